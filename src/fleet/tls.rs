//! A certificate authority made per run, and leaf certificates for the fake hosts. Nothing is
//! committed: every key is generated here.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// What certificate a fake host presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// Signed by the test CA, for the host name.
    Valid,
    /// Signed by the test CA, expired in 2020.
    Expired,
    /// Signed by the test CA, for another name.
    WrongName,
    /// Self-signed for the host name.
    SelfSigned,
}

/// The per-run CA, and the one key pair of its leaf certificates (made once: a fleet of
/// 100,000 hosts mints its certificates by signing, not by generating keys).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    pem: String,
    leaf_key: KeyPair,
    leaf_signing_key: Arc<dyn rustls::sign::SigningKey>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("fleet setup");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "exdisco test CA");
        let key = KeyPair::generate().expect("fleet setup");
        let cert = params.self_signed(&key).expect("fleet setup");
        let leaf_key = KeyPair::generate().expect("fleet setup");
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let leaf_signing_key = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key_der)
            .expect("fleet setup");
        Self {
            pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
            leaf_key,
            leaf_signing_key,
        }
    }

    /// The CA certificate (DER), for the client's extra roots.
    pub fn cert(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// The CA certificate (PEM), for `--ca-file`.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate of `kind` for `host`, ready for rustls.
    pub fn certified_key(&self, host: &str, kind: CertKind) -> Arc<CertifiedKey> {
        let name = match kind {
            CertKind::WrongName => "unrelated.invalid".to_owned(),
            _ => host.to_owned(),
        };
        let mut params = CertificateParams::new(vec![name]).expect("fleet setup");
        if kind == CertKind::Expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = &self.leaf_key;
        let cert = match kind {
            CertKind::SelfSigned => params.self_signed(key).expect("fleet setup"),
            _ => params.signed_by(key, &self.issuer).expect("fleet setup"),
        };
        Arc::new(CertifiedKey::new(
            vec![cert.der().clone()],
            self.leaf_signing_key.clone(),
        ))
    }
}
