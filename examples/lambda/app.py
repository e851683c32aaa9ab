"""A Python Lambda function, run unmodified through the Lambda Runtime API (awslambdaric)."""
import json


def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"hello": name, "path": event["path"], "requestId": context.aws_request_id}),
    }
