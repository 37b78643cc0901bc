//! utoipa 5 writes OpenAPI 3.1 only; the API serves 3.0.3. The dialects differ in meaning, not
//! only in spelling: 3.1's JSON Schema counts `190.0` as an integer and leaves `format` an
//! annotation, while the server refuses a Graph code of `190.0` and a `failed_at` that is not a
//! time, as 3.0 says it may (schemathesis holds the server to whichever the document claims). So
//! the derived document is rewritten in the 3.0 spelling of the few 3.1 forms utoipa emits:
//! - `"type": ["T", "null"]` is `"type": "T", "nullable": true`;
//! - `"oneOf": [{"type": "null"}, S]` is S with `"nullable": true` (beside a `$ref`, which 3.0
//!   reads alone, through `allOf`);
//! - the license's SPDX `identifier` is 3.1's.

use serde_json::{Map, Value, json};

pub fn from_3_1(mut doc: Value) -> Value {
    doc["openapi"] = "3.0.3".into();
    if let Some(license) = doc.pointer_mut("/info/license").and_then(Value::as_object_mut) {
        license.remove("identifier");
    }
    schemas_3_0(doc)
}

fn schemas_3_0(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(schemas_3_0).collect()),
        Value::Object(object) => {
            let object: Map<String, Value> = object.into_iter().map(|(k, v)| (k, schemas_3_0(v))).collect();
            Value::Object(nullable_3_0(object))
        }
        other => other,
    }
}

fn nullable_3_0(mut schema: Map<String, Value>) -> Map<String, Value> {
    let null = json!({"type": "null"});
    if let Some(Value::Array(types)) = schema.get("type")
        && types.contains(&Value::from("null"))
    {
        let mut rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        let single = (rest.len() == 1).then(|| rest.remove(0));
        schema.insert("type".into(), single.unwrap_or(Value::Array(rest)));
        schema.insert("nullable".into(), true.into());
    }
    let Some(Value::Array(branches)) = schema.get("oneOf") else { return schema };
    if !branches.contains(&null) {
        return schema;
    }
    let rest: Vec<Value> = branches.iter().filter(|b| **b != null).cloned().collect();
    let [only] = rest.as_slice() else {
        schema.insert("oneOf".into(), Value::Array(rest));
        schema.insert("nullable".into(), true.into());
        return schema;
    };
    schema.remove("oneOf");
    let mut merged = match only {
        Value::Object(o) if !o.contains_key("$ref") => o.clone(),
        reference => Map::from_iter([("allOf".to_owned(), json!([reference]))]),
    };
    // The wrapper's keys (the field's description) say more than the type's own.
    merged.extend(schema);
    merged.insert("nullable".into(), true.into());
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_types_objects_and_references_in_3_0_spelling() {
        let doc = json!({"openapi": "3.1.0", "info": {"license": {"name": "MIT", "identifier": "MIT"}},
            "components": {"schemas": {"S": {"type": "object", "properties": {
                "a": {"type": ["string", "null"], "format": "date-time"},
                "e": {"type": ["string", "null"], "enum": ["x", null]},
                "o": {"oneOf": [{"type": "null"}, {"type": "object", "description": "own", "required": ["b"]}],
                      "description": "field"},
                "r": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/T"}]},
                "n": {"type": "integer"}}}}}});
        assert_eq!(
            from_3_1(doc),
            json!({"openapi": "3.0.3", "info": {"license": {"name": "MIT"}},
                "components": {"schemas": {"S": {"type": "object", "properties": {
                    "a": {"type": "string", "format": "date-time", "nullable": true},
                    "e": {"type": "string", "enum": ["x", null], "nullable": true},
                    "o": {"type": "object", "description": "field", "required": ["b"], "nullable": true},
                    "r": {"allOf": [{"$ref": "#/components/schemas/T"}], "nullable": true},
                    "n": {"type": "integer"}}}}}})
        );
    }
}
