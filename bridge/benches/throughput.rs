//! Throughput of both bridge directions against a broker and an SNS/SQS API on 127.0.0.1;
//! prints messages per second. With moto as the AWS API, moto (single-threaded Python) is
//! usually the limit, so the figures tell little about real SNS and SQS.
//!
//! ```sh
//! scripts/broker start 19301 && scripts/aws-emulator start 19311
//! AURORA_BENCH_BOOTSTRAP=127.0.0.1:19301 AURORA_BENCH_AWS_ENDPOINT=http://127.0.0.1:19311 \
//!     cargo bench -p aurora-bridge --bench throughput
//! ```
//!
//! `AURORA_BENCH_MESSAGES` (default 2000) sets the number of messages of each direction.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aurora_bridge::sns_out::SnsOutConfig;
use aurora_bridge::sqs_in::SqsInConfig;
use aurora_bridge::AwsSettings;
use aurora_common::{KafkaArgs, TopicArgs};
use aurora_producer::{Encoding, EventProducer, NewEvent};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry,
};
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

/// Receive loops of sqs-in and of the baseline.
const POLLERS: usize = 4;

/// Maximum time either direction may take before the benchmark gives up.
const DEADLINE: Duration = Duration::from_secs(600);

/// Settings read from the environment.
struct Bench {
    kafka: KafkaArgs,
    aws: AwsSettings,
    messages: usize,
}

fn main() -> anyhow::Result<()> {
    let bootstrap = std::env::var("AURORA_BENCH_BOOTSTRAP")
        .context("set AURORA_BENCH_BOOTSTRAP to a broker such as 127.0.0.1:19301")?;
    let endpoint = std::env::var("AURORA_BENCH_AWS_ENDPOINT").context(
        "set AURORA_BENCH_AWS_ENDPOINT to an SNS/SQS API such as http://127.0.0.1:19311",
    )?;
    if !endpoint.starts_with("http://127.0.0.1:") {
        bail!("AURORA_BENCH_AWS_ENDPOINT must be http://127.0.0.1:PORT, got {endpoint}");
    }
    let messages = match std::env::var("AURORA_BENCH_MESSAGES") {
        Ok(text) => text
            .parse()
            .context("AURORA_BENCH_MESSAGES is not a number")?,
        Err(_) => 2000,
    };
    // Dummy credentials for the emulator, set before any thread starts.
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");

    let prefix = format!("bench-{}-{}.", std::process::id(), rand::random::<u32>());
    let mut kafka = KafkaArgs::new(bootstrap, prefix);
    // tansu 0.6.0 needs one record per batch and a short fetch wait; see the README.
    kafka.producer_properties = vec![("batch.num.messages".into(), "1".into())];
    kafka.consumer_properties = vec![("fetch.wait.max.ms".into(), "20".into())];
    let bench = Bench {
        kafka,
        aws: AwsSettings {
            endpoint_url: Some(endpoint),
            region: Some("us-east-1".into()),
        },
        messages,
    };
    tokio::runtime::Runtime::new()?.block_on(run(bench))
}

async fn run(bench: Bench) -> anyhow::Result<()> {
    let admin = aurora_common::kafka::admin(&bench.kafka)?;
    aurora_common::topics::create_topics(&admin, &bench.kafka.topics(), &TopicArgs::default())
        .await?;
    let sdk = aurora_bridge::aws::load(&bench.aws).await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    println!(
        "{} messages each way; debug or release per the cargo profile",
        bench.messages
    );
    inbound(&bench, &sqs).await?;
    outbound(&bench, &sqs, &sns).await?;
    Ok(())
}

/// Times a plain receive-and-delete loop (the ceiling the API sets), then sqs-in on an equal
/// queue until every message is an event and the queue is empty.
async fn inbound(bench: &Bench, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<()> {
    let baseline_url = create_queue(sqs, "bench-baseline").await?;
    fill(bench, sqs, &baseline_url).await?;
    let started = Instant::now();
    let loops = (0..POLLERS).map(|_| receive_and_delete(sqs, &baseline_url));
    for result in join_all(loops).await {
        result?;
    }
    let what = "baseline: ReceiveMessage and DeleteMessageBatch without the bridge";
    report(what, bench.messages, started.elapsed());

    let queue_url = create_queue(sqs, "bench-in").await?;
    fill(bench, sqs, &queue_url).await?;
    let mut config = SqsInConfig::new(bench.kafka.clone(), &queue_url);
    config.aws = bench.aws.clone();
    config.wait_time = Duration::from_secs(1);
    config.pollers = POLLERS;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let bridge = tokio::spawn(aurora_bridge::sqs_in::run(config, shutdown.clone()));
    wait_for(|| Ok(events_in_topic(&bench.kafka)? >= bench.messages as i64)).await?;
    let what = "sqs-in, SQS to acknowledged events";
    report(what, bench.messages, started.elapsed());
    wait_for_async(|| async { Ok(queue_depth(sqs, &queue_url).await? == 0) }).await?;
    report(
        "sqs-in, until the queue is empty",
        bench.messages,
        started.elapsed(),
    );
    shutdown.cancel();
    bridge.await??;
    Ok(())
}

/// Sends the benchmark's messages to a queue, ten per call.
async fn fill(bench: &Bench, sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    for first in (0..bench.messages).step_by(10) {
        let entries = (first..(first + 10).min(bench.messages)).map(|n| {
            SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(format!(r#"{{"n":{n}}}"#))
                .message_attributes("event_type", text("bench.in"))
                .build()
        });
        let entries = entries.collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    report(
        "SendMessageBatch to SQS (setup)",
        bench.messages,
        started.elapsed(),
    );
    Ok(())
}

/// Receives and deletes batches of ten until a receive returns nothing.
async fn receive_and_delete(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<()> {
    loop {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(());
        }
        let entries = messages.iter().enumerate().map(|(index, message)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .set_receipt_handle(message.receipt_handle.clone())
                .build()
        });
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries.collect::<Result<Vec<_>, _>>()?))
            .send()
            .await?;
    }
}

/// Fills the events topic, then times sns-out until every event reached the queue through SNS.
async fn outbound(
    bench: &Bench,
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
) -> anyhow::Result<()> {
    let queue_url = create_queue(sqs, "bench-out").await?;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .context("the queue has no ARN")?;
    let topic_name = format!("bench-out-{}", rand::random::<u32>());
    let topic_arn = sns
        .create_topic()
        .name(topic_name)
        .send()
        .await?
        .topic_arn
        .context("the topic has no ARN")?;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;

    let producer = EventProducer::new(&bench.kafka, "bench", Encoding::Headers)?;
    let sends = (0..bench.messages).map(|n| {
        producer.send(NewEvent {
            id: Some(format!("out-{n}")),
            event_type: "bench.out".into(),
            key: None,
            content_type: "application/json".into(),
            payload: format!(r#"{{"n":{n}}}"#).into_bytes(),
            tenant_id: None,
        })
    });
    for result in join_all(sends).await {
        result?;
    }

    let mut config = SnsOutConfig::new(bench.kafka.clone(), &topic_arn, vec!["bench.*".into()]);
    config.aws = bench.aws.clone();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let bridge = tokio::spawn(aurora_bridge::sns_out::run(config, shutdown.clone()));
    wait_for_async(|| async { Ok(queue_depth(sqs, &queue_url).await? >= bench.messages as u64) })
        .await?;
    report(
        "sns-out, events to SNS (counted in the subscribed queue)",
        bench.messages,
        started.elapsed(),
    );
    shutdown.cancel();
    bridge.await??;
    Ok(())
}

fn report(what: &str, messages: usize, elapsed: Duration) {
    println!(
        "{what}: {messages} messages in {:.2} s = {:.0} messages/s",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64()
    );
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    let name = format!("{name}-{}-{}", std::process::id(), rand::random::<u32>());
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await?
        .queue_url
        .context("the queue has no URL")
}

fn text(value: &str) -> aws_sdk_sqs::types::MessageAttributeValue {
    aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<u64> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let mut total = 0;
    for (_, count) in output.attributes.unwrap_or_default() {
        total += count.parse::<u64>()?;
    }
    Ok(total)
}

/// Returns the number of records in the events topic, from the partitions' end offsets.
fn events_in_topic(kafka: &KafkaArgs) -> anyhow::Result<i64> {
    let consumer: BaseConsumer =
        aurora_common::kafka::consumer_config(kafka, "bench-watermarks").create()?;
    let topic = kafka.topics().events;
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |found| found.partitions().len());
    let mut total = 0;
    for partition in 0..partitions as i32 {
        let (low, high) = consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?;
        total += high - low;
    }
    Ok(total)
}

async fn wait_for(mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    while !done()? {
        if Instant::now() > deadline {
            bail!("not done within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn wait_for_async<F, Fut>(mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + DEADLINE;
    while !done().await? {
        if Instant::now() > deadline {
            bail!("not done within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
