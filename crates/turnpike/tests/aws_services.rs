//! AWS service integrations (type `AWS`) end to end against moto's server (started here on an
//! ephemeral port): SQS SendMessage, DynamoDB PutItem/GetItem, S3 PutObject/GetObject.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// Runs a boto3 snippet against moto; returns its stdout.
fn boto(port: u16, code: &str) -> String {
    let script = format!(
        "import boto3, json\nkw = dict(endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n"
    );
    let out = Command::new(python())
        .args(["-c", &script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn aws_op(uri: &str, method: &str, extra: Value) -> Value {
    let mut integration = json!({
        "type": "AWS", "httpMethod": method, "uri": uri,
        "credentials": "arn:aws:iam::123456789012:role/apigw",
        "passthroughBehavior": "WHEN_NO_TEMPLATES",
        "responses": {"default": {"statusCode": "200"}, "4\\d{2}": {"statusCode": "400"}},
    });
    if let (Value::Object(i), Value::Object(e)) = (&mut integration, extra) {
        i.extend(e);
    }
    json!({"responses": {"200": {"description": "ok"}, "400": {"description": "e"}},
           "x-amazon-apigateway-integration": integration})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_dynamodb_s3_against_moto() {
    let moto = Moto::start();
    boto(
        moto.port,
        "boto3.client('sqs', **kw).create_queue(QueueName='q')\n\
         boto3.client('dynamodb', **kw).create_table(TableName='pets', KeySchema=[{'AttributeName': 'id', 'KeyType': 'HASH'}], AttributeDefinitions=[{'AttributeName': 'id', 'AttributeType': 'S'}], BillingMode='PAY_PER_REQUEST')\n\
         boto3.client('s3', **kw).create_bucket(Bucket='bkt')",
    );
    let mut get_item = aws_op(
        "arn:aws:apigateway:us-east-1:dynamodb:action/GetItem",
        "POST",
        json!({"requestTemplates": {"application/json":
            "{\"TableName\": \"pets\", \"Key\": {\"id\": {\"S\": \"$input.params('id')\"}}}"},
            "responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json":
                "{\"name\": \"$input.path('$.Item.name.S')\"}"}}}}),
    );
    get_item["parameters"] = path_params(&["id"]);
    let key_mapping = json!({"integration.request.path.key": "method.request.path.key"});
    let mut put_obj = aws_op(
        "arn:aws:apigateway:us-east-1:s3:path/bkt/{key}",
        "PUT",
        json!({"requestParameters": key_mapping.clone(),
               "requestTemplates": {}, "passthroughBehavior": "WHEN_NO_MATCH"}),
    );
    put_obj["parameters"] = path_params(&["key"]);
    let mut get_obj = aws_op(
        "arn:aws:apigateway:us-east-1:s3:path/bkt/{key}",
        "GET",
        json!({"requestParameters": key_mapping,
               "responses": {"default": {"statusCode": "200", "responseParameters": {
                   "method.response.header.Content-Type": "integration.response.header.Content-Type"}},
                   "404": {"statusCode": "400"}}}),
    );
    get_obj["parameters"] = path_params(&["key"]);
    get_obj["responses"]["200"]["headers"] =
        json!({"Content-Type": {"schema": {"type": "string"}}});
    let paths = json!({
        "/messages": {"post": aws_op(
            "arn:aws:apigateway:us-east-1:sqs:path/123456789012/q",
            "POST",
            json!({
                "requestParameters": {"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
                "requestTemplates": {"application/json": "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"},
            }),
        )},
        "/pets": {"post": aws_op(
            "arn:aws:apigateway:us-east-1:dynamodb:action/PutItem",
            "POST",
            json!({"requestTemplates": {"application/json":
                "{\"TableName\": \"pets\", \"Item\": {\"id\": {\"S\": \"$input.path('$.id')\"}, \"name\": {\"S\": \"$input.path('$.name')\"}}}"}}),
        )},
        "/pets/{id}": {"get": get_item},
        "/files/{key}": {"put": put_obj, "get": get_obj},
    });
    let dir = temp_dir();
    write_json(dir.path(), "api.json", &openapi("Services", paths));
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let file = write(
        dir.path(),
        "turnpike.yaml",
        &format!(
            "apis:\n  - definition: api.json\n    id: servicesa1\n    stages:\n      - name: dev\naws:\n  endpoints: {{sqs: \"{endpoint}\", dynamodb: \"{endpoint}\", s3: \"{endpoint}\"}}\n  credentials:\n    \"arn:aws:iam::123456789012:role/apigw\": {{accessKeyId: test, secretAccessKey: test}}\n"
        ),
    );
    let mut tp = Turnpike::serve(&file);
    let c = client();

    // SQS SendMessage (query protocol, form-encoded body from the template).
    let r = send(
        c.post(tp.url("/dev/messages"))
            .header("Content-Type", "application/json")
            .body(r#"{"hello": "queue"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), tp.stderr());
    assert!(r.text().contains("MessageId"), "{}", r.text());
    let got = boto(
        moto.port,
        "q = boto3.client('sqs', **kw)\nurl = q.get_queue_url(QueueName='q')['QueueUrl']\nprint(q.receive_message(QueueUrl=url)['Messages'][0]['Body'])",
    );
    assert_eq!(got.trim(), r#"{"hello": "queue"}"#);

    // DynamoDB PutItem / GetItem (JSON protocol, X-Amz-Target from the action).
    let r = send(
        c.post(tp.url("/dev/pets"))
            .header("Content-Type", "application/json")
            .body(r#"{"id": "7", "name": "Rex"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&tp.url("/dev/pets/7")).await;
    assert_eq!((r.status, r.json()), (200, json!({"name": "Rex"})));
    let got = boto(
        moto.port,
        "print(boto3.client('dynamodb', **kw).get_item(TableName='pets', Key={'id': {'S': '7'}})['Item']['name']['S'])",
    );
    assert_eq!(got.trim(), "Rex");

    // S3 PutObject / GetObject (path URIs with a mapped path parameter).
    let r = send(
        c.put(tp.url("/dev/files/note.txt"))
            .header("Content-Type", "text/plain")
            .body("stored through the gateway"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = boto(
        moto.port,
        "print(boto3.client('s3', **kw).get_object(Bucket='bkt', Key='note.txt')['Body'].read().decode())",
    );
    assert_eq!(got.trim(), "stored through the gateway");
    let r = send(
        c.get(tp.url("/dev/files/note.txt"))
            .header("Accept", "text/plain"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "stored through the gateway");
    // A service error (missing key) is selected by its status.
    let r = get(&tp.url("/dev/files/missing.txt")).await;
    assert_eq!(r.status, 400, "{}", r.text());

    tp.sigterm();
    assert!(tp.wait_exit(WAIT).is_some());
}

/// The project's `aws:` endpoints follow a hot reload like the rest of the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_endpoints_follow_hot_reload() {
    let moto = Moto::start();
    boto(
        moto.port,
        "s3 = boto3.client('s3', **kw)\ns3.create_bucket(Bucket='bkt')\ns3.put_object(Bucket='bkt', Key='k', Body=b'from moto')",
    );
    let mut get_obj = aws_op(
        "arn:aws:apigateway:us-east-1:s3:path/bkt/{key}",
        "GET",
        json!({"requestParameters": {"integration.request.path.key": "method.request.path.key"}}),
    );
    get_obj["parameters"] = path_params(&["key"]);
    let dir = temp_dir();
    write_json(
        dir.path(),
        "api.json",
        &openapi("Reload", json!({"/files/{key}": {"get": get_obj}})),
    );
    let project = |endpoint: &str| {
        format!(
            "apis:\n  - definition: api.json\n    id: awsreload1\n    stages:\n      - name: dev\naws:\n  endpoints: {{s3: \"{endpoint}\"}}\n  credentials:\n    default: {{accessKeyId: test, secretAccessKey: test}}\n"
        )
    };
    let file = write(
        dir.path(),
        "turnpike.yaml",
        &project(&format!("http://127.0.0.1:{}", closed_port())),
    );
    let mut tp = Turnpike::serve_with(&file, &[]);
    let r = get(&tp.url("/dev/files/k")).await;
    assert_eq!(r.status, 500, "nothing listens there: {}", r.text());
    write(
        dir.path(),
        "turnpike.yaml",
        &project(&format!("http://127.0.0.1:{}", moto.port)),
    );
    assert!(
        tp.wait_stderr("definition reloaded", WAIT),
        "{}",
        tp.stderr()
    );
    let r = get(&tp.url("/dev/files/k")).await;
    assert_eq!((r.status, r.text()), (200, "from moto".to_string()));
    tp.sigterm();
    assert!(tp.wait_exit(WAIT).is_some());
}
