//! The policy test cases in `policies/tests/` (given a principal, an action,
//! a resource and the facts, then this decision for these reasons), and the
//! refusal of invalid policy sets with file:line:column.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use shiplog_policy::{
    GateAction, GateContext, PolicyEngine, PolicyError, PolicySources, SourceFile, read_cases, run_cases,
};

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn engine() -> PolicyEngine {
    PolicyEngine::load(&PolicySources::read_dir(&policies_dir(), None).unwrap()).unwrap()
}

#[test]
fn every_policy_case_holds() {
    let engine = engine();
    let cases = read_cases(&policies_dir().join("tests")).unwrap();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    for gate in [
        "environment-access",
        "production-deploy",
        "emergency-deploy",
        "merge",
        "infrastructure",
        "rollback",
        "canary",
        "migration",
    ] {
        let denied = cases.iter().any(|(_, c)| c.expect.reasons.iter().flatten().any(|r| r.starts_with(gate)));
        assert!(denied, "no case shows gate {gate} refusing");
    }
    let failures = run_cases(&engine, &cases);
    assert!(
        failures.is_empty(),
        "failing policy cases:\n{}",
        failures.iter().map(|(k, v)| format!("  {k}: {v}")).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_deny_carries_advice_a_person_can_act_on() {
    let engine = engine();
    let (decision, _) = engine.decide("u-1005", GateAction::Deploy, "production", &GateContext::default()).unwrap();
    assert!(!decision.allowed);
    for reason in &decision.reasons {
        assert_eq!(reason.effect, "forbid");
        assert!(reason.advice.len() > 30 && reason.advice.contains(':'), "{reason:?}");
    }
}

fn load_with(name: &str, text: &str) -> Result<PolicyEngine, PolicyError> {
    let mut sources = PolicySources::read_dir(&policies_dir(), None).unwrap();
    sources.policies.push(SourceFile { name: name.into(), text: text.into() });
    PolicyEngine::load(&sources)
}

#[test]
fn invalid_policies_are_refused_with_file_line_and_column() {
    let cases = [
        (
            "a misspelt context field",
            "// gate\n@id(\"x\")\n@advice(\"do: this\")\nforbid (principal, action == Shiplog::Action::\"deploy\", resource)\nunless { context.emergncy };\n",
            "typo.cedar:5:",
        ),
        (
            "a syntax error",
            "@id(\"y\")\n@advice(\"do: this\")\npermit (principal, action, resource) when { true && };\n",
            "typo.cedar:3:",
        ),
        ("no @id", "@advice(\"do: this\")\npermit (principal, action, resource);\n", "needs an @id"),
        ("no @advice", "@id(\"z\")\npermit (principal, action, resource);\n", "needs an @advice"),
        (
            "an id used twice",
            "@id(\"base\")\n@advice(\"do: this\")\npermit (principal, action, resource);\n",
            "used twice",
        ),
        (
            "an unknown entity type",
            "@id(\"w\")\n@advice(\"do: this\")\npermit (principal == Shiplog::Robot::\"r\", action, resource);\n",
            "typo.cedar:3:",
        ),
    ];
    for (name, text, says) in cases {
        let err = match load_with("typo.cedar", text) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(says), "{name}: expected {says:?} in {err}");
    }
}

#[test]
fn the_hash_changes_with_any_policy_and_the_directory_is_checked() {
    let a = engine();
    let b = load_with("zz.cedar", "@id(\"extra\")\n@advice(\"do: this\")\npermit (principal, action, resource);\n")
        .unwrap();
    assert_ne!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    assert!(a.in_group("u-1002", "TechLead") && !a.in_group("u-1001", "TechLead"));

    let mut sources = PolicySources::read_dir(&policies_dir(), None).unwrap();
    sources.entities = Some(SourceFile {
        name: "bad.json".into(),
        text: r#"[{"uid": {"type": "Shiplog::Environment", "id": "production"}, "attrs": {"maintenanceWindow": {"days": ["Funday"], "start": "09:00", "end": "10:00"}}, "parents": []}]"#.into(),
    });
    let err = PolicyEngine::load(&sources).err().unwrap().to_string();
    assert!(err.contains("bad.json") && err.contains("Funday"), "{err}");
}

#[test]
fn the_context_matches_the_schema_for_every_action() {
    let engine = engine();
    let full = GateContext { canary_error_rate: 0.0123, migration_phase: "contract".into(), ..GateContext::default() };
    for action in GateAction::ALL {
        engine.check_context(action, &GateContext::default()).unwrap();
        engine.check_context(action, &full).unwrap();
    }
}
