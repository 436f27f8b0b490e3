"""Image references in the distribution grammar: `rollout release --image` and stack files.

A bad reference is exit 2 with one line naming the key (``--image`` or the stack
file's key); two references count as one release only when they are the same
string or carry the same valid digest. The generated cases build references
from the grammar's parts, valid and broken one part at a time.
"""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import edit_stack
from rollout.model.images import ImageRefError, parse
from rollout.model.releases import is_pinned, release_of, same_release

ROLLOUT = str(Path(sys.executable).with_name("rollout"))
SHA = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8

VALID = [
    "ghcr.io/example/genesis:1.6.0",
    f"ghcr.io/example/genesis@{SHA}",
    f"ghcr.io/example/genesis:1.6.0@{SHA}",
    f"ghcr.io/example/genesis@{SHA512}",
    "localhost:5000/team/app:v1",
    "registry.example.com:8443/a/b/c:2026.01.02-rc_1",
    "genesis:1.6.0",
    "my_org/my-app__x:" + "t" * 128,
    "[::1]:5000/app:1",
]

BAD = {
    "digest of 63 hex": f"ghcr.io/example/genesis@sha256:{'a' * 63}",
    "digest of 65 hex": f"ghcr.io/example/genesis@sha256:{'a' * 65}",
    "sha512 of sha256's length": f"ghcr.io/example/genesis@sha512:{'a' * 64}",
    "two digests": f"ghcr.io/example/genesis@{SHA}@{SHA}",
    "md5": f"ghcr.io/example/genesis@md5:{'a' * 32}",
    "empty digest": "ghcr.io/example/genesis@",
    "empty digest hex": "ghcr.io/example/genesis@sha256:",
    "upper-case hex": f"ghcr.io/example/genesis@sha256:{'A' * 64}",
    "upper-case repository": "ghcr.io/Example/Genesis:1.6.0",
    "upper-case first component": "Example/genesis:1.6.0",
    "upper-case name": "Genesis:1.6.0",
    "tag of 129": "ghcr.io/example/genesis:" + "t" * 129,
    "tag starting with a dot": "ghcr.io/example/genesis:.1",
    "empty tag": "ghcr.io/example/genesis:",
    "empty": "",
    "whitespace": "ghcr.io/example/genesis :1",
    "final newline": "ghcr.io/example/genesis:1\n",
    "non-ASCII": "ghcr.io/exämple/genesis:1",
    "double slash": "ghcr.io//genesis:1",
    "trailing separator": "ghcr.io/example/genesis-:1",
    "name over 255": "ghcr.io/" + "a" * 256 + ":1",
}


@pytest.mark.parametrize("text", VALID)
def test_valid_references_parse(text):
    parsed = parse(text)
    assert text.startswith(parsed.name)


@pytest.mark.parametrize("why", sorted(BAD))
def test_bad_references_are_refused_with_one_line(why):
    with pytest.raises(ImageRefError) as refused:
        parse(BAD[why])
    message = str(refused.value)
    assert "\n" not in message and "not a container image reference" in message


def test_only_the_same_real_digest_makes_two_strings_one_release():
    a, b = f"ghcr.io/example/genesis@{SHA}", f"ghcr.io/example/genesis:1.6.0@{SHA}"
    assert same_release(a, b)
    bogus = "ghcr.io/example/genesis@sha256:abc"
    assert not same_release(bogus, "ghcr.io/other/thing@sha256:abc")
    assert not same_release("ghcr.io/a@md5:" + "a" * 32, "ghcr.io/b@md5:" + "a" * 32)
    assert release_of(bogus) == bogus


def test_pinned_means_a_valid_digest_or_a_tag_other_than_latest():
    assert is_pinned("ghcr.io/example/genesis:1.6.0") and is_pinned(f"ghcr.io/example/genesis@{SHA}")
    assert not is_pinned("ghcr.io/example/genesis:latest") and not is_pinned("ghcr.io/example/genesis")
    assert not is_pinned("ghcr.io/example/genesis@sha256:abc")


# --- generated: the grammar's parts, and one part broken at a time -----------------------

_alnum = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
_component = st.builds(lambda parts, seps: "".join(p + s for p, s in zip(parts, seps)) + parts[-1] if len(parts) > 1 else parts[0],
                       st.lists(_alnum, min_size=1, max_size=3), st.lists(st.sampled_from([".", "_", "__", "-", "--"]), min_size=2, max_size=2))
_path = st.lists(_component, min_size=1, max_size=4).map("/".join)
_host = st.sampled_from(["ghcr.io", "registry.example.com:5000", "localhost", "localhost:5000", "10.0.0.1:443", ""])
_tag = st.builds(lambda first, rest: first + rest, st.sampled_from(list(string.ascii_letters + string.digits + "_")),
                 st.text(string.ascii_letters + string.digits + "_.-", max_size=127))
_digest = st.one_of(
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}"),
    st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: f"sha512:{h}"),
)


def _reference(host, path, tag, digest):
    name = f"{host}/{path}" if host else path
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@settings(max_examples=300, deadline=None)
@given(_host, _path, st.none() | _tag, st.none() | _digest)
def test_generated_valid_references_parse_and_keep_their_parts(host, path, tag, digest):
    # Without a host, a first component with a '.' is read as one (the grammar's rule).
    assume(len(path) <= 255 and (host or "." not in path.split("/")[0]))
    text = _reference(host, path, tag, digest)
    parsed = parse(text)
    assert (parsed.tag, parsed.digest) == (tag, digest)


_BREAKS = {
    "tag too long": lambda h, p, t, d: _reference(h, p, "a" * 129, d),
    "tag bad first": lambda h, p, t, d: _reference(h, p, "-" + t, d),
    "digest short": lambda h, p, t, d: _reference(h, p, t, d[:-1]),
    "digest long": lambda h, p, t, d: _reference(h, p, t, d + "0"),
    "digest upper": lambda h, p, t, d: _reference(h, p, t, d.upper()),
    "digest algorithm": lambda h, p, t, d: _reference(h, p, t, "md5" + d[d.index(":"):]),
    "two digests": lambda h, p, t, d: _reference(h, p, t, d) + "@" + d,
    "upper path": lambda h, p, t, d: _reference(h, p + "U", t, d),  # the last component: never a host
    "space": lambda h, p, t, d: _reference(h, p, t, d) + " ",
    "empty component": lambda h, p, t, d: _reference(h, p + "/", t, d),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_BREAKS)), _host, _path, _tag, _digest)
def test_generated_references_broken_in_one_part_are_refused(how, host, path, tag, digest):
    with pytest.raises(ImageRefError):
        parse(_BREAKS[how](host, path, tag, digest))


# --- the command line and the stack file ----------------------------------------------------


def _rollout(project, *args):
    return subprocess.run([ROLLOUT, "--project", str(project), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("why", ["digest of 63 hex", "two digests", "md5", "empty digest", "upper-case repository", "tag of 129"])
def test_release_with_a_bad_image_is_exit_2_naming_the_option(project, why):
    before = (project / "stacks" / "Pulumi.staging.yaml").read_text()
    done = _rollout(project, "release", "--stack", "staging", "--image", BAD[why])
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "--image" in line and "not a container image reference" in line and "Traceback" not in done.stderr
    assert (project / "stacks" / "Pulumi.staging.yaml").read_text() == before


@pytest.mark.parametrize("why", ["digest of 63 hex", "upper-case repository", "md5"])
def test_a_stack_file_with_a_bad_image_is_exit_2_naming_the_key(project, why):
    edit_stack(project, "staging", lambda c: c["rollout:services"][0]["canary"].update(image=BAD[why]))
    done = _rollout(project, "check", "--stack", "staging")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "canary.image" in done.stderr and "not a container image reference" in done.stderr
    assert "Traceback" not in done.stderr
