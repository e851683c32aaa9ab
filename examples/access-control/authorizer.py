"""A Lambda TOKEN authorizer, run unmodified through the Lambda Runtime API (awslambdaric).

`Bearer allow-me` is allowed every method of the stage, with a context; `Bearer deny-me` gets
an explicit Deny; any other token is Unauthorized (401), as AWS answers when a function raises
"Unauthorized".
"""


def handler(event, context):
    token = event.get("authorizationToken", "")
    if token not in ("Bearer allow-me", "Bearer deny-me"):
        raise Exception("Unauthorized")
    # arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH -> every method of the stage.
    api, stage = event["methodArn"].split("/")[:2]
    return {
        "principalId": "user-42",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": "Allow" if token == "Bearer allow-me" else "Deny",
                "Resource": f"{api}/{stage}/*",
            }],
        },
        "context": {"tenant": "acme", "tier": 2},
    }
