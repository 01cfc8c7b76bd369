//! RabbitMQ (AMQP 0-9-1): a persistent, mandatory publish on a confirm-mode channel, done
//! when the broker acks it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};

use super::target::AmqpTarget;
use super::{BrokerError, Message, Pool, Published};

/// Idle channels kept per connection; more publishes at once open more, and the surplus
/// is closed when they finish.
const IDLE_CHANNELS: usize = 16;

/// One connection and its idle confirm-mode channels.
#[derive(Clone)]
pub(super) struct Conn {
    connection: Arc<Connection>,
    /// Channels in confirm mode, each used by one publish at a time: a channel the broker
    /// closes (a missing exchange) then fails only that publish.
    idle: Arc<Mutex<Vec<Channel>>>,
}

impl Conn {
    async fn channel(&self) -> Result<Channel, lapin::Error> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(channel) if channel.status().connected() => return Ok(channel),
                Some(_) => continue,
                None => break,
            }
        }
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }

    fn give_back(&self, channel: Channel) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CHANNELS && channel.status().connected() {
            idle.push(channel);
        }
    }
}

pub(super) async fn publish(
    pool: &Pool<Conn>,
    to: &AmqpTarget,
    message: &Message<'_>,
    timeout: Duration,
) -> Result<Published, BrokerError> {
    let key = to.key();
    let conn = pool
        .get(
            &key,
            |conn| conn.connection.status().connected(),
            || connect(to, timeout),
        )
        .await?;
    let channel = match conn.channel().await {
        Ok(channel) => channel,
        Err(err) => {
            pool.forget(&key).await;
            return Err(classify(to, "opening a channel", &err));
        }
    };

    let confirm = async {
        channel
            .basic_publish(
                to.exchange.as_str().into(),
                to.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                message.body,
                properties(message),
            )
            .await?
            .await
    }
    .await;
    let destination = format!(
        "exchange {:?} routing key {:?}",
        to.exchange, to.routing_key
    );
    match confirm {
        Ok(Confirmation::Ack(None)) => {
            conn.give_back(channel);
            Ok(Published {
                detail: format!("rabbitmq {destination}: confirmed"),
                duplicate: false,
            })
        }
        Ok(Confirmation::Ack(Some(returned))) => {
            conn.give_back(channel);
            Err(BrokerError::Refused(format!(
                "{}: {destination}: returned unroutable ({} {}): no queue is bound for it",
                to.display(),
                returned.reply_code,
                returned.reply_text
            )))
        }
        Ok(Confirmation::Nack(_)) => {
            conn.give_back(channel);
            Err(BrokerError::Unavailable(format!(
                "{}: {destination}: the broker nacked the message (it could not take it \
                 now, e.g. a queue at its length limit)",
                to.display()
            )))
        }
        Ok(Confirmation::NotRequested) => Err(BrokerError::Unavailable(format!(
            "{}: the channel was not in confirm mode",
            to.display()
        ))),
        Err(err) => {
            if !conn.connection.status().connected() {
                pool.forget(&key).await;
            }
            Err(classify(to, &format!("publish to {destination}"), &err))
        }
    }
}

/// Persistent, with the key as `message_id`, `Content-Type` as `content_type`, and every
/// header in the headers table.
fn properties(message: &Message<'_>) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in message.headers {
        headers.insert(
            ShortString::from(name.clone()),
            AMQPValue::LongString(LongString::from(value.clone())),
        );
    }
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers)
        .with_timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
    // A short string holds 255 bytes; a longer key still travels in the headers.
    if let Some(key) = message.idempotency_key().filter(|key| key.len() <= 255) {
        properties = properties.with_message_id(key.into());
    }
    if let Some(content_type) = message.header("Content-Type").filter(|ct| ct.len() <= 255) {
        properties = properties.with_content_type(content_type.into());
    }
    properties
}

async fn connect(to: &AmqpTarget, timeout: Duration) -> Result<Conn, BrokerError> {
    let uri = AMQPUri {
        scheme: if to.server.tls {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: to.server.user.clone().unwrap_or_default(),
                password: to.server.password.clone().unwrap_or_default(),
            },
            host: to.server.host.clone(),
            port: to.server.port,
        },
        vhost: to.vhost.clone(),
        query: AMQPQueryString {
            connection_timeout: Some(timeout.as_millis().try_into().unwrap_or(u64::MAX)),
            ..AMQPQueryString::default()
        },
    };
    let connection = Connection::connect_uri(uri, ConnectionProperties::default())
        .await
        .map_err(|err| classify(to, "connecting", &err))?;
    Ok(Conn {
        connection: Arc::new(connection),
        idle: Arc::default(),
    })
}

/// Permanent when the broker refused (missing exchange or vhost, access, size, a failed
/// precondition), transient for the rest (I/O, a forced close, the broker's own errors).
fn classify(to: &AmqpTarget, doing: &str, err: &lapin::Error) -> BrokerError {
    let text = format!("{}: {doing}: {err}", to.display());
    match err.kind() {
        ErrorKind::ProtocolError(amqp) if refused(amqp) => BrokerError::Refused(text),
        _ => BrokerError::Unavailable(text),
    }
}

fn refused(err: &AMQPError) -> bool {
    match err.kind() {
        AMQPErrorKind::Soft(soft) => matches!(
            soft,
            AMQPSoftError::NOTFOUND
                | AMQPSoftError::ACCESSREFUSED
                | AMQPSoftError::CONTENTTOOLARGE
                | AMQPSoftError::NOROUTE
                | AMQPSoftError::PRECONDITIONFAILED
        ),
        // 530 NOT_ALLOWED is how RabbitMQ says "no such vhost" (or no access to it).
        AMQPErrorKind::Hard(hard) => {
            matches!(hard, AMQPHardError::NOTALLOWED | AMQPHardError::INVALIDPATH)
        }
    }
}
