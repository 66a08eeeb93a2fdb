//! `courier config check`: validates everything, prints the effective configuration with
//! secrets redacted, and names the file and field of any error.

use std::path::Path;
use std::process::{Command, Output};

fn check(config: &Path, envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["config", "check", "--config"])
        .arg(config)
        .envs(envs.iter().copied())
        .output()
        .expect("run courier")
}

fn write_config(dir: &Path, customer: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("customers")).unwrap();
    std::fs::write(dir.join("customers/acme.toml"), customer).unwrap();
    let config = dir.join("courier.toml");
    std::fs::write(
        &config,
        "customers_dir = \"customers\"\n[kafka]\nbrokers = \"127.0.0.1:9\"\ngroup_id = \"g\"\ntopics = [\"events\"]\n[kafka.properties]\n\"sasl.password\" = \"kafka-pass\"\n",
    )
    .unwrap();
    config
}

const ACME: &str = r#"
id = "acme"
write_keys = ["wk_acme"]
[destinations.hook]
kind = "webhook"
enabled = true
[destinations.hook.settings]
url = "https://hooks.example/acme"
secret = "${ACME_SECRET}"
"#;

#[test]
fn prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), ACME);
    let out = check(&config, &[("ACME_SECRET", "very-secret-value")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["customers"]["acme"]["destinations"]["hook"]["settings"]["timeout_ms"],
        10000
    );
    assert_eq!(
        v["settings"]["kafka"]["properties"]["sasl.password"],
        "<redacted>"
    );
    assert!(
        !stdout.contains("very-secret-value") && !stdout.contains("kafka-pass"),
        "{stdout}"
    );
}

#[test]
fn errors_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let secret = [("ACME_SECRET", "s")];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(String, Env<'_>, Vec<&str>); 4] = [
        (
            ACME.replace("url =", "urll ="),
            &secret,
            vec!["acme.toml", "\"hook\"", "settings.urll"],
        ),
        (
            ACME.to_string(),
            &[],
            vec![
                "acme.toml",
                "destinations.hook.settings.secret",
                "ACME_SECRET",
            ],
        ),
        (
            ACME.replace("\"webhook\"", "\"fax\""),
            &secret,
            vec!["acme.toml", "\"fax\"", "webhook", "blackhole"],
        ),
        (
            ACME.replace("enabled = true", "enabled = \"yes\""),
            &secret,
            vec!["acme.toml", "destinations.hook.enabled"],
        ),
    ];
    for (customer, env, expected) in cases {
        let config = write_config(dir.path(), &customer);
        let out = check(&config, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "should fail: {customer}");
        for e in expected {
            assert!(stderr.contains(e), "{stderr:?} should mention {e:?}");
        }
    }
}
