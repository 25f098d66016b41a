//! Certificates made for a test: a CA, a server certificate of it valid for localhost and
//! 127.0.0.x, a client certificate of it (CN "root"), and a client certificate of another CA.
//! PEM files in a dir, as a user would have them.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

pub struct Certs {
    pub dir: PathBuf,
    ca: (rcgen::Certificate, KeyPair),
}

impl Certs {
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    pub fn ca(&self) -> String {
        self.file("ca.crt")
    }
    /// The server (and peer) pair.
    pub fn server(&self) -> (String, String) {
        (self.file("server.crt"), self.file("server.key"))
    }
    /// A client pair of the CA, CN "root".
    pub fn client(&self) -> (String, String) {
        (self.file("client.crt"), self.file("client.key"))
    }
    /// A client pair of another CA.
    pub fn stranger(&self) -> (String, String) {
        (self.file("other-client.crt"), self.file("other-client.key"))
    }

    /// A new pair of the CA, `<name>.crt` and `<name>.key`, valid for the loopback hosts,
    /// with common name `cn` (empty: no common name at all).
    pub fn issue(&self, name: &str, cn: &str) -> (String, String) {
        leaf(&self.dir, name, cn, &HOSTS, &self.ca);
        (self.file(&format!("{name}.crt")), self.file(&format!("{name}.key")))
    }

    /// Writes a new server pair of the CA with common name `cn` over the old one (a rotation).
    pub fn reissue_server(&self, cn: &str) {
        let tmp = self.dir.join("new");
        std::fs::create_dir_all(&tmp).unwrap();
        leaf(&tmp, "server", cn, &HOSTS, &self.ca);
        // Key first, then certificate: a reader in between sees a mismatched pair, which must
        // keep the last good one.
        std::fs::rename(tmp.join("server.key"), self.dir.join("server.key")).unwrap();
        std::fs::rename(tmp.join("server.crt"), self.dir.join("server.crt")).unwrap();
    }
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate of `issuer` for `names`, with common name `cn`; writes `<name>.crt/.key`.
pub fn leaf(dir: &Path, name: &str, cn: &str, names: &[&str], issuer: &(rcgen::Certificate, KeyPair)) {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    // rcgen's default name has a CN of its own: start from an empty one.
    p.distinguished_name = rcgen::DistinguishedName::new();
    if !cn.is_empty() {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    p.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// The hosts a member on loopback is reached by.
pub const HOSTS: [&str; 11] = [
    "localhost",
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    "127.0.0.11",
    "127.0.0.12",
    "127.0.0.13",
    "127.0.0.14",
    "::1",
];

pub fn make(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    let main = ca("cairn test ca");
    let other = ca("another ca");
    std::fs::write(dir.join("ca.crt"), main.cert.pem()).unwrap();
    std::fs::write(dir.join("other-ca.crt"), other.cert.pem()).unwrap();
    let main = (main.cert, main.key);
    let other = (other.cert, other.key);
    leaf(dir, "server", "server", &HOSTS, &main);
    leaf(dir, "client", "root", &[], &main);
    leaf(dir, "other-client", "root", &[], &other);
    Certs { dir: dir.to_path_buf(), ca: main }
}
