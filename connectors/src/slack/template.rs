//! Message templates: text with `{{field.path}}` placeholders, parsed once at build time.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Vec<String>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an unclosed or empty placeholder is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or("unclosed {{ in template")?;
            let path = after[..end].trim();
            if path.is_empty() {
                return Err("empty {{}} in template".into());
            }
            parts.push(Part::Field(path.split('.').map(str::to_owned).collect()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Renders the template for `event`.
    pub fn render(&self, event: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => {
                    let value = path.iter().try_fold(event, |v, key| v.get(key));
                    let text = match value {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    };
                    out.push_str(&escape(&text));
                }
            }
        }
        out
    }
}

/// Slack's three control characters in message text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_fields_and_escapes() {
        let t = Template::parse("{{userId}} did {{event}}: {{properties.plan}} ({{missing.x}})")
            .unwrap();
        let e =
            json!({"userId": "u<1>", "event": "Signed Up", "properties": {"plan": "pro & more"}});
        assert_eq!(t.render(&e), "u&lt;1&gt; did Signed Up: pro &amp; more ()");
        assert!(Template::parse("{{oops").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert_eq!(
            Template::parse("n={{n}}").unwrap().render(&json!({"n": 3})),
            "n=3"
        );
    }
}
