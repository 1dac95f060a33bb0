//! The throwaway PKI of a test environment: a CA, the API server's serving certificate, the admin's client
//! certificate (`system:masters`) and the service-account signing key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::EnvError;

/// PEM files written into a directory, and the PEM text the kubeconfig embeds.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate.
    pub ca_cert: PathBuf,
    /// The API server's serving certificate and key.
    pub serving_cert: PathBuf,
    /// Key of [`Pki::serving_cert`].
    pub serving_key: PathBuf,
    /// Service-account token signing key (PKCS#8).
    pub service_account_key: PathBuf,
    /// Its public half, which verifies the tokens.
    pub service_account_public_key: PathBuf,
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Admin client certificate, PEM.
    pub admin_cert_pem: String,
    /// Admin client key, PEM.
    pub admin_key_pem: String,
    /// The admin client certificate, as a file (the API server's client certificate for kubelets).
    pub admin_cert: PathBuf,
    /// Its key, as a file.
    pub admin_key: PathBuf,
}

fn cert_error(source: rcgen::Error) -> EnvError {
    EnvError::Certificates(source)
}

impl Pki {
    /// Generates every key and certificate and writes them under `dir`.
    pub fn generate(dir: &Path) -> Result<Pki, EnvError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        ca_params.distinguished_name.push(DnType::CommonName, "cairn-test-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(cert_error)?).map_err(cert_error)?;

        let names =
            ["localhost", "127.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.0.0.1"];
        let mut serving = CertificateParams::new(names.map(String::from).to_vec()).map_err(cert_error)?;
        serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate().map_err(cert_error)?;
        let serving_cert = serving.signed_by(&serving_key, &ca).map_err(cert_error)?;

        let mut admin = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin.distinguished_name.push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_key = KeyPair::generate().map_err(cert_error)?;
        let admin_cert = admin.signed_by(&admin_key, &ca).map_err(cert_error)?;

        let service_account_key = KeyPair::generate().map_err(cert_error)?;

        std::fs::create_dir_all(dir)
            .map_err(|error| EnvError::Io { what: format!("creating {}", dir.display()), error })?;
        let write = |name: &str, pem: &str| -> Result<PathBuf, EnvError> {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .map_err(|error| EnvError::Io { what: format!("writing {}", path.display()), error })?;
            Ok(path)
        };
        Ok(Pki {
            ca_cert: write("ca.crt", &ca.pem())?,
            serving_cert: write("apiserver.crt", &serving_cert.pem())?,
            serving_key: write("apiserver.key", &serving_key.serialize_pem())?,
            service_account_key: write("service-account.key", &service_account_key.serialize_pem())?,
            service_account_public_key: write("service-account.pub", &service_account_key.public_key_pem())?,
            ca_pem: ca.pem(),
            admin_cert: write("admin.crt", &admin_cert.pem())?,
            admin_key: write("admin.key", &admin_key.serialize_pem())?,
            admin_cert_pem: admin_cert.pem(),
            admin_key_pem: admin_key.serialize_pem(),
        })
    }
}
