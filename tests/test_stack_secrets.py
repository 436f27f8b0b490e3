"""The example stacks' secrets are real Pulumi passphrase ciphertexts, not placeholders.

pulumi-crypto, an independent implementation of Pulumi's passphrase secrets
provider, decrypts them with the passphrase the README documents, so a real
`pulumi up` can read them.
"""

from __future__ import annotations

import pytest
import yaml
from pulumi_crypto import PassphraseCipher

from conftest import FIXTURE, ROOT, STACKS

EXAMPLE_PASSPHRASE = "rollout-example-passphrase"


@pytest.mark.parametrize("stack", STACKS)
def test_every_secret_decrypts_with_the_documented_example_passphrase(stack):
    document = yaml.safe_load((FIXTURE / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    cipher = PassphraseCipher(EXAMPLE_PASSPHRASE, salt_state=document["encryptionsalt"])
    secrets = document["config"]["rollout:secrets"]
    assert secrets
    for name, value in secrets.items():
        plaintext = cipher.decrypt(value["secure"])
        assert stack in plaintext and "example" in plaintext, name
        if name.endswith("Url"):
            assert plaintext.startswith("https://"), name


@pytest.mark.parametrize("stack", STACKS)
def test_a_wrong_passphrase_is_refused(stack):
    document = yaml.safe_load((FIXTURE / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    with pytest.raises(Exception):
        PassphraseCipher("not-the-passphrase", salt_state=document["encryptionsalt"])


def test_the_readme_documents_the_example_passphrase():
    assert EXAMPLE_PASSPHRASE in (ROOT / "README.md").read_text()
