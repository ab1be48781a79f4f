//! SNS and SQS clients for the AWS emulator at AURORA_TEST_AWS_ENDPOINT (moto on 127.0.0.1),
//! with dummy credentials, and helpers that create uniquely named topics and queues.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, QueueAttributeName};

/// Region every test resource lives in.
pub const REGION: &str = "us-east-1";

/// Returns the AWS emulator's endpoint URL.
pub fn endpoint() -> String {
    let endpoint = std::env::var("AURORA_TEST_AWS_ENDPOINT").expect(
        "AURORA_TEST_AWS_ENDPOINT is not set; run the tests with scripts/test, which starts the moto AWS emulator",
    );
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AURORA_TEST_AWS_ENDPOINT must be http://127.0.0.1:PORT, got {endpoint}"
    );
    endpoint
}

/// Returns a queue or topic name unique to this run and test.
pub fn unique_name(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), rand::random::<u32>())
}

/// A queue's URL and ARN.
#[derive(Debug, Clone)]
pub struct Queue {
    pub url: String,
    pub arn: String,
}

/// SNS and SQS clients of the emulator.
pub struct Aws {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub endpoint: String,
}

impl Aws {
    pub async fn connect() -> Aws {
        let endpoint = endpoint();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(aurora_bridge::aws::http_client())
            .endpoint_url(&endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await;
        Aws {
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            endpoint,
        }
    }

    /// Creates a queue with these attributes.
    pub async fn create_queue(
        &self,
        name: &str,
        attributes: &[(QueueAttributeName, &str)],
    ) -> Queue {
        let mut request = self.sqs.create_queue().queue_name(unique_name(name));
        for (attribute, value) in attributes {
            request = request.attributes(attribute.clone(), *value);
        }
        let url = request
            .send()
            .await
            .expect("queue is created")
            .queue_url
            .expect("queue has a URL");
        let arn = self
            .queue_attributes(&url, QueueAttributeName::QueueArn)
            .await
            .expect("queue has an ARN");
        Queue { url, arn }
    }

    /// Returns one attribute of a queue.
    pub async fn queue_attributes(&self, url: &str, name: QueueAttributeName) -> Option<String> {
        let output = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(name.clone())
            .send()
            .await
            .expect("queue attributes are readable");
        output.attributes?.remove(&name)
    }

    /// Returns how many messages the queue holds, visible or in flight.
    pub async fn queue_depth(&self, url: &str) -> u64 {
        let mut total = 0;
        for name in [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ] {
            let count = self.queue_attributes(url, name).await.unwrap_or_default();
            total += count.parse::<u64>().expect("message count is a number");
        }
        total
    }

    /// Waits until the queue contains no message; returns whether it emptied within `timeout`.
    pub async fn wait_until_empty(&self, url: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.queue_depth(url).await == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Creates an SNS topic and returns its ARN.
    pub async fn create_topic(&self, name: &str) -> String {
        self.sns
            .create_topic()
            .name(unique_name(name))
            .send()
            .await
            .expect("topic is created")
            .topic_arn
            .expect("topic has an ARN")
    }

    /// Subscribes a queue to a topic, with or without raw message delivery.
    pub async fn subscribe(&self, topic_arn: &str, queue: &Queue, raw: bool) {
        self.sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue.arn)
            .attributes("RawMessageDelivery", if raw { "true" } else { "false" })
            .send()
            .await
            .expect("queue is subscribed");
    }

    /// Publishes to a topic with String attributes; returns the SNS MessageId.
    pub async fn publish(
        &self,
        topic_arn: &str,
        message: &str,
        attributes: &[(&str, &str)],
    ) -> String {
        let mut request = self.sns.publish().topic_arn(topic_arn).message(message);
        for (name, value) in attributes {
            let value = aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .unwrap();
            request = request.message_attributes(*name, value);
        }
        request
            .send()
            .await
            .expect("message is published")
            .message_id
            .expect("published message has an id")
    }

    /// Sends a message straight to a queue with String attributes; returns the SQS MessageId.
    pub async fn send(&self, url: &str, body: &str, attributes: &[(&str, &str)]) -> String {
        let mut request = self.sqs.send_message().queue_url(url).message_body(body);
        for (name, value) in attributes {
            request = request.message_attributes(*name, text(value));
        }
        request
            .send()
            .await
            .expect("message is sent")
            .message_id
            .expect("sent message has an id")
    }

    /// Receives and deletes messages until none arrives for `quiet`, or `timeout` passes.
    pub async fn drain(&self, url: &str, quiet: Duration, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        let mut last_arrival = Instant::now();
        while Instant::now() < deadline && last_arrival.elapsed() < quiet {
            let output = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive succeeds");
            for message in output.messages.unwrap_or_default() {
                last_arrival = Instant::now();
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("delete succeeds");
                messages.push(message);
            }
        }
        messages
    }
}

/// Builds a String message attribute.
pub fn text(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

/// Returns the String message attributes of a received message.
pub fn string_attributes(message: &Message) -> HashMap<String, String> {
    message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_string())))
        .collect()
}
