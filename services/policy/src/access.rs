//! Who may call which part of the API: a Cedar policy set of its own
//! (`policies/access/api.cedar`, schema `schema/access.cedarschema`), as
//! auditable as the gates. The server maps every route and GraphQL field to
//! one [`ApiAction`] and asks [`AccessPolicy::allows`].

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::RwLock;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    RestrictedExpression, Schema,
};
use serde::{Deserialize, Serialize};

use crate::{Gates, PolicyError, SourceFile, hash_files, load_gates};

/// The Cedar schema the access policy is validated against.
pub const ACCESS_SCHEMA: &str = include_str!("../../../schema/access.cedarschema");

/// The access policy the server runs with unless given another.
pub const DEFAULT_ACCESS_POLICY: &str = include_str!("../../../policies/access/api.cedar");

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Pipeline,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Pipeline, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Pipeline => "pipeline",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request does, as the access policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiAction {
    Health,
    Metrics,
    Webhook,
    Console,
    Record,
    Decide,
    Read,
    Export,
    Prove,
    ManageTokens,
    ManagePolicies,
}

impl ApiAction {
    pub const ALL: [ApiAction; 11] = [
        ApiAction::Health,
        ApiAction::Metrics,
        ApiAction::Webhook,
        ApiAction::Console,
        ApiAction::Record,
        ApiAction::Decide,
        ApiAction::Read,
        ApiAction::Export,
        ApiAction::Prove,
        ApiAction::ManageTokens,
        ApiAction::ManagePolicies,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiAction::Health => "health",
            ApiAction::Metrics => "metrics",
            ApiAction::Webhook => "webhook",
            ApiAction::Console => "console",
            ApiAction::Record => "record",
            ApiAction::Decide => "decide",
            ApiAction::Read => "read",
            ApiAction::Export => "export",
            ApiAction::Prove => "prove",
            ApiAction::ManageTokens => "manage-tokens",
            ApiAction::ManagePolicies => "manage-policies",
        }
    }
}

impl std::fmt::Display for ApiAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking: a token (its name and role) or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Anonymous,
    Token { name: &'a str, role: Role },
}

/// Most cached answers before the cache starts over: one per token, role
/// and action in use, so only a flood of new tokens reaches it.
const CACHE_LIMIT: usize = 10_000;

/// Cached answers: by role (`None`: anonymous) and action, then by token
/// name, so that a lookup borrows the name instead of copying it.
type Cache = HashMap<(Option<Role>, ApiAction), HashMap<String, bool>>;

/// A loaded, validated access policy.
pub struct AccessPolicy {
    set: Gates,
    schema: Schema,
    hash: String,
    files: Vec<String>,
    token_type: EntityTypeName,
    role_type: EntityTypeName,
    action_type: EntityTypeName,
    resource: EntityUid,
    anonymous: EntityUid,
    /// Answers already worked out; the set never changes once loaded.
    cache: RwLock<Cache>,
}

impl std::fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessPolicy").field("hash", &self.hash).field("files", &self.files).finish()
    }
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    EntityTypeName::from_str(name).map_err(|e| PolicyError::Schema(e.to_string()))
}

impl AccessPolicy {
    /// The policy shiplog ships (`policies/access/api.cedar`).
    pub fn builtin() -> Result<AccessPolicy, PolicyError> {
        AccessPolicy::load(&[SourceFile { name: "access/api.cedar".into(), text: DEFAULT_ACCESS_POLICY.into() }])
    }

    /// Parse and validate (strictly) an access policy set. Every policy
    /// needs an `@id` and an `@advice`, as the gates' do.
    pub fn load(files: &[SourceFile]) -> Result<AccessPolicy, PolicyError> {
        if files.is_empty() {
            return Err(PolicyError::Io("the access policy has no file".into()));
        }
        let schema = Schema::from_cedarschema_str(ACCESS_SCHEMA)
            .map(|(schema, _)| schema)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let set = load_gates(files, &schema)?;
        let api = type_name("ShiplogApi::Api")?;
        let anonymous = type_name("ShiplogApi::Anonymous")?;
        Ok(AccessPolicy {
            set,
            schema,
            hash: hash_files(files.iter()),
            files: files.iter().map(|f| f.name.clone()).collect(),
            token_type: type_name("ShiplogApi::Token")?,
            role_type: type_name("ShiplogApi::Role")?,
            action_type: type_name("ShiplogApi::Action")?,
            resource: EntityUid::from_type_name_and_id(api, EntityId::new("shiplog")),
            anonymous: EntityUid::from_type_name_and_id(anonymous, EntityId::new("anonymous")),
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// SHA-256 of the set's files.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Whether the policy lets `principal` do `action`. A request Cedar
    /// cannot evaluate is refused.
    pub fn allows(&self, principal: Principal<'_>, action: ApiAction) -> bool {
        let (role, name) = match principal {
            Principal::Anonymous => (None, ""),
            Principal::Token { name, role } => (Some(role), name),
        };
        if let Ok(cache) = self.cache.read() {
            if let Some(answer) = cache.get(&(role, action)).and_then(|names| names.get(name)) {
                return *answer;
            }
        }
        let answer = self.evaluate(principal, action).unwrap_or(false);
        if let Ok(mut cache) = self.cache.write() {
            if cache.values().map(HashMap::len).sum::<usize>() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.entry((role, action)).or_default().insert(name.to_owned(), answer);
        }
        answer
    }

    /// The roles whose tokens may do `action` (for a refusal's message).
    pub fn roles_allowed(&self, action: ApiAction) -> Vec<Role> {
        Role::ALL.into_iter().filter(|role| self.allows(Principal::Token { name: "", role: *role }, action)).collect()
    }

    fn evaluate(&self, principal: Principal<'_>, action: ApiAction) -> Result<bool, PolicyError> {
        let request_error = |e: &dyn std::fmt::Display| PolicyError::Request(e.to_string());
        let (uid, entities) = match principal {
            Principal::Anonymous => (self.anonymous.clone(), Vec::new()),
            Principal::Token { name, role } => {
                let role_uid = EntityUid::from_type_name_and_id(self.role_type.clone(), EntityId::new(role.as_str()));
                let uid = EntityUid::from_type_name_and_id(self.token_type.clone(), EntityId::new(name));
                let attrs = HashMap::from([("name".to_owned(), RestrictedExpression::new_string(name.to_owned()))]);
                let token = Entity::new(uid.clone(), attrs, HashSet::from([role_uid.clone()]))
                    .map_err(|e| request_error(&e))?;
                (uid, vec![token, Entity::new_no_attrs(role_uid, HashSet::new())])
            }
        };
        let entities = Entities::from_entities(entities, Some(&self.schema)).map_err(|e| request_error(&e))?;
        let action_uid = EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(action.as_str()));
        let request =
            cedar_policy::Request::new(uid, action_uid, self.resource.clone(), Context::empty(), Some(&self.schema))
                .map_err(|e| request_error(&e))?;
        let response = Authorizer::new().is_authorized(&request, &self.set.set, &entities);
        Ok(response.decision() == CedarDecision::Allow && response.diagnostics().errors().next().is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped policy, role by role and action by action: the contract
    /// PRODUCT.md states (pipeline: record, decide, read; auditor: read,
    /// export, proofs; admin: everything; health and metrics public).
    #[test]
    fn builtin_policy_grants_what_the_roles_promise() {
        let policy = AccessPolicy::builtin().unwrap();
        let public = [ApiAction::Health, ApiAction::Metrics, ApiAction::Webhook, ApiAction::Console];
        for action in ApiAction::ALL {
            let is_public = public.contains(&action);
            assert_eq!(policy.allows(Principal::Anonymous, action), is_public, "anonymous {action}");
            let admin = Principal::Token { name: "root", role: Role::Admin };
            assert!(policy.allows(admin, action), "admin {action}");
            let pipeline = Principal::Token { name: "ci-main", role: Role::Pipeline };
            let expected = is_public || matches!(action, ApiAction::Record | ApiAction::Decide | ApiAction::Read);
            assert_eq!(policy.allows(pipeline, action), expected, "pipeline {action}");
            let auditor = Principal::Token { name: "audit", role: Role::Auditor };
            let expected = is_public || matches!(action, ApiAction::Read | ApiAction::Export | ApiAction::Prove);
            assert_eq!(policy.allows(auditor, action), expected, "auditor {action}");
        }
        assert_eq!(policy.roles_allowed(ApiAction::Export), vec![Role::Admin, Role::Auditor]);
        assert_eq!(policy.hash().len(), 64);
    }

    #[test]
    fn a_policy_outside_the_schema_is_refused_with_its_place() {
        let file = SourceFile {
            name: "access/bad.cedar".into(),
            text: "@id(\"x\")\n@advice(\"y\")\npermit (principal, action == ShiplogApi::Action::\"delete-everything\", resource);\n".into(),
        };
        let err = AccessPolicy::load(&[file]).unwrap_err().to_string();
        assert!(err.contains("access/bad.cedar"), "{err}");
    }

    #[test]
    fn a_policy_can_name_one_token() {
        let file = SourceFile {
            name: "access/one.cedar".into(),
            text: "@id(\"exporter\")\n@advice(\"only the nightly exporter exports\")\npermit (principal, action == ShiplogApi::Action::\"export\", resource) when { principal is ShiplogApi::Token && principal.name == \"nightly\" };\n".into(),
        };
        let policy = AccessPolicy::load(&[file]).unwrap();
        assert!(policy.allows(Principal::Token { name: "nightly", role: Role::Pipeline }, ApiAction::Export));
        assert!(!policy.allows(Principal::Token { name: "other", role: Role::Pipeline }, ApiAction::Export));
        assert!(!policy.allows(Principal::Anonymous, ApiAction::Export));
    }
}
