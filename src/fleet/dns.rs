//! A DNS authority on 127.0.0.1 (UDP and TCP) for the `.test` names of one test, built in
//! code. Each name can answer records, NXDOMAIN, SERVFAIL, or nothing at all (a timeout).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// How a name answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Records(Vec<RData>),
    NxDomain,
    ServFail,
    Silent,
}

#[derive(Default)]
struct Zone {
    entries: HashMap<(String, RecordType), Answer>,
    names: HashMap<String, ()>,
    queried: Vec<String>,
    wildcards: Vec<(String, Ipv4Addr)>,
    recording: bool,
}

/// The fake name server. Stops on drop.
pub struct FakeDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeDns {
    pub async fn start() -> Self {
        // UDP and TCP on the same port: retry when the TCP side of a fresh UDP port is taken.
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("fleet setup");
            let addr = udp.local_addr().expect("fleet setup");
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp, addr);
            }
        };
        let zone = Arc::new(Mutex::new(Zone {
            recording: true,
            ..Zone::default()
        }));
        let udp = Arc::new(udp);
        let udp_zone = zone.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(reply) = answer(&udp_zone, &buf[..len]) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        });
        let tcp_zone = zone.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    return;
                };
                let zone = tcp_zone.clone();
                tokio::spawn(async move {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut buf = vec![0u8; len as usize];
                    if stream.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    if let Some(reply) = answer(&zone, &buf) {
                        let _ = stream.write_u16(reply.len() as u16).await;
                        let _ = stream.write_all(&reply).await;
                    }
                });
            }
        });
        Self {
            addr,
            zone,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// `name` has an A record.
    pub fn a(&self, name: &str, ip: Ipv4Addr) -> &Self {
        self.add(name, RecordType::A, RData::A(A(ip)))
    }

    /// `_autodiscover._tcp.DOMAIN`-style SRV record.
    pub fn srv(&self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> &Self {
        let target =
            Name::from_str(&format!("{}.", target.trim_end_matches('.'))).expect("fleet setup");
        self.add(
            name,
            RecordType::SRV,
            RData::SRV(SRV::new(priority, weight, port, target)),
        )
    }

    /// `name` answers `answer` for `record_type`.
    pub fn set(&self, name: &str, record_type: RecordType, answer: Answer) -> &Self {
        let mut zone = self.zone.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(answer, Answer::NxDomain) {
            zone.names.insert(key(name), ());
        }
        zone.entries.insert((key(name), record_type), answer);
        self
    }

    /// Every name under `suffix` has an A record `ip` (and no other record).
    pub fn wildcard_a(&self, suffix: &str, ip: Ipv4Addr) -> &Self {
        self.zone
            .lock()
            .expect("fleet setup")
            .wildcards
            .push((format!(".{}", key(suffix)), ip));
        self
    }

    /// Whether queried names are kept (on by default; off for benchmarks).
    pub fn set_recording(&self, on: bool) {
        self.zone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recording = on;
    }

    /// Every name queried so far.
    pub fn queried(&self) -> Vec<String> {
        self.zone
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .queried
            .clone()
    }

    fn add(&self, name: &str, record_type: RecordType, data: RData) -> &Self {
        let mut zone = self.zone.lock().unwrap_or_else(|e| e.into_inner());
        zone.names.insert(key(name), ());
        let entry = zone
            .entries
            .entry((key(name), record_type))
            .or_insert_with(|| Answer::Records(Vec::new()));
        if let Answer::Records(records) = entry {
            records.push(data);
        }
        self
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn answer(zone: &Mutex<Zone>, query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?.clone();
    let name = key(&question.name().to_ascii());
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.queries.push(question.clone());
    let mut zone = zone.lock().unwrap_or_else(|e| e.into_inner());
    if zone.recording && zone.queried.len() < 100_000 {
        zone.queried.push(name.clone());
    }
    match zone.entries.get(&(name.clone(), question.query_type())) {
        Some(Answer::Silent) => return None,
        Some(Answer::NxDomain) => reply.metadata.response_code = ResponseCode::NXDomain,
        Some(Answer::ServFail) => reply.metadata.response_code = ResponseCode::ServFail,
        Some(Answer::Records(records)) => {
            for data in records {
                reply.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    data.clone(),
                ));
            }
        }
        None if zone.names.contains_key(&name) => {}
        None => match zone
            .wildcards
            .iter()
            .find(|(suffix, _)| name.ends_with(suffix.as_str()))
        {
            Some((_, ip)) if question.query_type() == RecordType::A => {
                reply.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::A(A(*ip)),
                ));
            }
            Some(_) => {}
            None => reply.metadata.response_code = ResponseCode::NXDomain,
        },
    }
    reply.to_vec().ok()
}
