"""The rollout policy pack: `pulumi preview --policy-pack policies`."""

from pulumi_policy import PolicyPack

from policies.pack import crossguard_policies

PolicyPack(name="rollout", policies=crossguard_policies())
