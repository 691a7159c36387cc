//! App parameters (ShinyProxy's `parameters`): the user picks values before launch, from the
//! value sets they may use, and the app starts with them. This module holds the settings and
//! decides whether a request's values are allowed, with ShinyProxy's messages.

use std::collections::BTreeMap;

use super::access::{AccessExpressions, Subject};

#[derive(Debug, Clone, Default)]
pub struct Parameters {
    pub definitions: Vec<Definition>,
    pub value_sets: Vec<ValueSet>,
}

#[derive(Debug, Clone, Default)]
pub struct Definition {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// Pre-selected in the form; never filled in by the server.
    pub default_value: Option<String>,
    /// What the user sees for a value: `(value, name)`.
    pub value_names: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct ValueSet {
    pub name: Option<String>,
    pub access: ValueSetAccess,
    /// Per parameter id, the values this set allows.
    pub values: BTreeMap<String, Vec<String>>,
}

/// A value set's `access-control`: ShinyProxy's app rules, for one set.
#[derive(Debug, Clone, Default)]
pub struct ValueSetAccess {
    pub groups: Vec<String>,
    pub users: Vec<String>,
    pub expressions: AccessExpressions,
}

/// The values a launch goes ahead with.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Chosen {
    /// Per parameter id, the value the app gets.
    pub values: BTreeMap<String, String>,
    pub value_set: Option<String>,
    /// For people and the API (`SHINYPROXY_PARAMETER_NAMES`): each parameter's name,
    /// description and the value as the user gave it.
    pub names: Vec<ChosenName>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChosenName {
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub description: Option<String>,
    pub value: String,
}

impl ValueSetAccess {
    pub fn allows(&self, s: &Subject) -> bool {
        super::access::rules_allow(&self.groups, &self.users, &self.expressions, s)
    }
}

impl Definition {
    pub fn label(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.id)
    }

    /// The value behind what the user gave: a value's name, or the value itself unless it
    /// has a name (then only the name is accepted, as in ShinyProxy).
    fn backend_value(&self, given: &str) -> Option<String> {
        if let Some((value, _)) = self.value_names.iter().find(|(_, n)| n == given) {
            return Some(value.clone());
        }
        let named = self.value_names.iter().any(|(v, _)| v == given);
        (!named).then(|| given.to_string())
    }

    /// What the form shows for a value.
    pub fn name_of<'a>(&'a self, value: &'a str) -> &'a str {
        self.value_names
            .iter()
            .find(|(v, _)| v == value)
            .map_or(value, |(_, n)| n.as_str())
    }
}

impl Parameters {
    /// ShinyProxy's check of a launch's parameters, in its order and with its messages: all
    /// present, then the first value set (in the file's order) the user may use that allows
    /// every value.
    pub fn choose(
        &self,
        given: Option<&BTreeMap<String, String>>,
        s: &Subject,
    ) -> Result<Chosen, String> {
        let Some(given) = given else {
            return Err("No parameters provided, but proxy spec expects parameters".into());
        };
        if given.len() != self.definitions.len() {
            return Err("Invalid number of parameters provided".into());
        }
        for d in &self.definitions {
            if !given.contains_key(&d.id) {
                return Err(format!("Missing value for parameter {}", d.id));
            }
        }
        for set in self.value_sets.iter().filter(|v| v.access.allows(s)) {
            let values: Option<BTreeMap<String, String>> = self
                .definitions
                .iter()
                .map(|d| {
                    let value = d.backend_value(given.get(&d.id)?)?;
                    let allowed = set.values.get(&d.id)?.contains(&value);
                    allowed.then(|| (d.id.clone(), value))
                })
                .collect();
            if let Some(values) = values {
                let names = self
                    .definitions
                    .iter()
                    .map(|d| ChosenName {
                        display_name: d.label().to_string(),
                        description: d.description.clone(),
                        value: given.get(&d.id).cloned().unwrap_or_default(),
                    })
                    .collect();
                return Ok(Chosen {
                    values,
                    value_set: set.name.clone(),
                    names,
                });
            }
        }
        Err("Provided parameter values are not allowed".into())
    }

    /// Per parameter, the values (as the form shows them) of the value sets `s` may use, in
    /// first-seen order.
    pub fn offered(&self, s: &Subject) -> Vec<(&Definition, Vec<String>)> {
        let sets: Vec<&ValueSet> = self
            .value_sets
            .iter()
            .filter(|v| v.access.allows(s))
            .collect();
        self.definitions
            .iter()
            .map(|d| {
                let mut names: Vec<String> = Vec::new();
                for value in sets
                    .iter()
                    .filter_map(|set| set.values.get(&d.id))
                    .flatten()
                {
                    let name = d.name_of(value).to_string();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                (d, names)
            })
            .collect()
    }
}
