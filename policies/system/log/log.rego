package system.log

# OPA's decision-log plugin removes every path listed in mask from the
# input of each logged decision before it is buffered or sent. Token claims
# (a caller's identity and whatever the issuer put in the token) and tool
# arguments (a caller's data) are not for a decision-log service: the audit
# trail keeps who decided what without them.

mask contains "/input/token"

mask contains "/input/mcp/arguments"
