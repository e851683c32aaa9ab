"""AWS's serverless chat sample (simple-websockets-chat-app), for Turnpike.

on_connect / on_disconnect record connection ids (in a directory instead of DynamoDB);
send_message broadcasts `data` to every connection through the @connections management API
with boto3's `apigatewaymanagementapi` client, exactly as on AWS.
"""
import json
import os

import boto3

CONNECTIONS = os.environ.get("CONNECTIONS_DIR", "/tmp/turnpike-chat-connections")
os.makedirs(CONNECTIONS, exist_ok=True)


def on_connect(event, context):
    connection_id = event["requestContext"]["connectionId"]
    with open(os.path.join(CONNECTIONS, connection_id), "w") as f:
        f.write(event["requestContext"].get("identity", {}).get("sourceIp", ""))
    return {"statusCode": 200, "body": "Connected."}


def on_disconnect(event, context):
    connection_id = event["requestContext"]["connectionId"]
    try:
        os.remove(os.path.join(CONNECTIONS, connection_id))
    except FileNotFoundError:
        pass
    return {"statusCode": 200, "body": "Disconnected."}


def send_message(event, context):
    rc = event["requestContext"]
    # On AWS the callback URL is https://{domainName}/{stage}; locally the port is needed too.
    endpoint = os.environ.get("CALLBACK_URL") or f"https://{rc['domainName']}/{rc['stage']}"
    api = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    data = json.loads(event.get("body") or "{}").get("data", "")
    for connection_id in os.listdir(CONNECTIONS):
        try:
            api.post_to_connection(ConnectionId=connection_id, Data=data.encode("utf-8"))
        except api.exceptions.GoneException:
            try:
                os.remove(os.path.join(CONNECTIONS, connection_id))
            except FileNotFoundError:
                pass
    return {"statusCode": 200, "body": "Data sent."}
