"""The jamjam policy pack: loaded by `pulumi preview --policy-pack policies`.

Only this file builds the PolicyPack, because constructing it starts the analyzer's gRPC server
and blocks; the rules live in the importable ``jamjam_policies`` package (tests, the offline
runner tools/policy_check.py and `make plan` import that instead).
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from jamjam_policies import ALL_POLICIES, PACK_NAME

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=ALL_POLICIES,
)
