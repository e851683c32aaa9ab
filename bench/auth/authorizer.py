"""Lambda TOKEN authorizer for bench/auth-bench.py, speaking the Runtime API itself (stdlib only).

Allows every method of the stage for the token `Bearer bench-token`, with a context; any other
token is Unauthorized. Each invocation is counted in $AUTH_COUNT (a file), so the benchmark can
show that the cache answered all but the first request.
"""
import json
import os
import urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
COUNT = os.environ.get("AUTH_COUNT")

while True:
    with urllib.request.urlopen(API + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    if COUNT:
        with open(COUNT, "a") as f:
            f.write("1\n")
    if event.get("authorizationToken") == "Bearer bench-token":
        arn = event["methodArn"].split("/")
        result = {"principalId": "bench-user",
                  "policyDocument": {"Version": "2012-10-17", "Statement": [
                      {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn[0] + "/" + arn[1] + "/*"}]},
                  "context": {"tenant": "bench", "tier": 3}}
        path = "/response"
    else:
        result = {"errorMessage": "Unauthorized", "errorType": "Exception"}
        path = "/error"
    req = urllib.request.Request(API + "/invocation/" + rid + path, data=json.dumps(result).encode(), method="POST")
    urllib.request.urlopen(req).read()
