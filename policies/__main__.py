"""The jamjam policy pack: loaded by `pulumi preview --policy-pack policies`.

Only this file builds the PolicyPack, because constructing it starts the analyzer's gRPC server
and blocks; the rules live in the importable ``jamjam_policies`` package (tests, the offline
runner tools/policy_check.py and `make plan` import that instead).

No pack-wide enforcement level: each rule states its own (tests/test_policies.py requires it),
so no rule turns mandatory, or advisory, by inheriting a default.
"""

from pulumi_policy import PolicyPack

from jamjam_policies import ALL_POLICIES, PACK_NAME

PolicyPack(
    name=PACK_NAME,
    policies=ALL_POLICIES,
)
