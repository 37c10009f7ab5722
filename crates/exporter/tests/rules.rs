//! The shipped alert rules: promtool accepts them, its unit tests pass, the
//! committed default rendering equals a fresh one from monitoring/rules.nix,
//! and every alert has a firing and a silent case in monitoring/rules/tests.yml.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{monitoring, promtool, rendered_rules};

fn alert_names(rules: &serde_json::Value) -> Vec<String> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "needs promtool: run via checks/offline"]
fn promtool_checks_and_unit_tests_pass() {
    let dir = monitoring().join("rules");
    for args in [
        vec!["check", "rules", "chainstead.rules.yml"],
        vec!["test", "rules", "tests.yml"],
    ] {
        let out = Command::new(promtool())
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs nix-instantiate: run via checks/offline"]
fn committed_rules_are_the_default_rendering() {
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("rules/chainstead.rules.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        committed,
        rendered_rules("{ }"),
        "monitoring/rules/chainstead.rules.yml is stale: regenerate it with\n  \
         nix-instantiate --eval --strict --json -E 'import ./monitoring/rules.nix {{}}' | jq . > monitoring/rules/chainstead.rules.yml"
    );
    // A threshold reaches its expression.
    let custom = rendered_rules("{ channelInactiveMinutes = 7; bitcoindMinPeers = 9; }");
    let text = custom.to_string();
    assert!(text.contains("\"for\":\"7m\""), "{text}");
    assert!(text.contains("< 9"), "{text}");
}

#[test]
fn every_alert_fires_and_stays_silent_in_the_unit_tests() {
    let rules: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("rules/chainstead.rules.yml")).unwrap(),
    )
    .unwrap();
    let tests = std::fs::read_to_string(monitoring().join("rules/tests.yml")).unwrap();
    // (alert, firing?) for each alert_rule_test entry, in order.
    let mut cases = Vec::new();
    let mut current: Option<String> = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts without an alertname");
            cases.push((name, rest.trim() != "[]"));
        }
    }
    let names = alert_names(&rules);
    assert_eq!(names.len(), 17, "{names:?}");
    for name in &names {
        assert!(
            cases.contains(&(name.clone(), true)),
            "{name} has no firing case in tests.yml"
        );
        assert!(
            cases.contains(&(name.clone(), false)),
            "{name} has no silent case in tests.yml"
        );
    }
    for (name, _) in &cases {
        assert!(
            names.contains(name),
            "tests.yml tests {name}, which no rule defines"
        );
    }
}
