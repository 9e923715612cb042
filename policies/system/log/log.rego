package system.log

# OPA's decision-log plugin removes every path listed in mask from the
# input of each logged decision before it is buffered or sent. Token claims
# (whatever the issuer put in the token: names, emails, custom claims) and
# the raw tool arguments (a caller's data) are not for a decision-log
# service. Who decided stays readable: the token's sub, iss, aud, client_id,
# scopes and groups are what the policy decided on and what a reader of the
# log needs to follow a decision.

mask contains "/input/token/claims"

mask contains "/input/mcp/arguments"
