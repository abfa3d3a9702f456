//! Record transformations (issue 12, item 1) and children that see every record of an
//! incremental parent (item 7), end to end: every step, JSON types kept, nested paths,
//! the order of steps, transformations before dedup and the incremental window, the
//! connector-wide default and the byte-exact fast path without one, `validate` errors at
//! file:line:col; and the HubSpot-style example connector against a loopback stand-in.

mod support;

use serde_json::{Value, json};
use support::{Reply, Sandbox, rec, recs, serve, spec, spec_full};

#[test]
fn every_step_reshapes_the_record_in_order_and_keeps_json_types() {
    let srv = serve(|_| {
        Reply::json(
            r#"{"items": [{"id": 1, "qty": 3, "price": 2.5, "meta": {"etag": "x", "tags": ["a"]}, "props": {"email": "a@b", "id": 99}, "old": "o", "drop": true}]}"#,
        )
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    transform:
      - lift: props
      - add:
          total: "{{ record.qty * record.price }}"
          tags: "{{ record.meta.tags }}"
          big: "{{ record.qty > 2 }}"
          label: "n{{ record.id }}"
          plain: text
          nested.deep: "{{ record.id }}"
      - remove: [meta.etag, drop]
      - rename: { old: new, nested.deep: deep }
      - add: { seen_total: "{{ record.total }}" }
      - keep: [id, email, total, tags, big, label, plain, new, meta, deep, seen_total]
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        sb.lines("items"),
        vec![
            r#"{"id":1,"email":"a@b","total":7.5,"tags":["a"],"big":true,"label":"n1","plain":"text","new":"o","meta":{"tags":["a"]},"deep":1,"seen_total":7.5}"#
        ],
        "lift kept the top-level id; add kept number, list, boolean; remove was nested; a later add read an earlier one"
    );
}

#[test]
fn a_stream_without_transforms_stays_byte_exact_and_defaults_apply_elsewhere() {
    let srv = serve(|_| Reply::json(format!(r#"{{"items": [{}], "x": 1}}"#, recs([1, 2]))));
    let sb = Sandbox::new();
    sb.spec(&format!(
        "{}defaults:\n  transform:\n    - remove: [a, b]\n",
        spec(
            r#"
  plain:
    path: /items
    records: $.items[*]
    transform: []
  shaped:
    path: /items
    records: $.items[*]
  own:
    path: /items
    records: $.items[*]
    transform:
      - keep: id
"#
        )
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("plain"), vec![rec(1), rec(2)], "written as sent");
    assert_eq!(
        sb.lines("shaped"),
        vec![
            r#"{"id":1,"name":"item 1","price":1.5}"#,
            r#"{"id":2,"name":"item 2","price":2.5}"#
        ],
        "the default applies"
    );
    assert_eq!(
        sb.lines("own"),
        vec![r#"{"id":1}"#, r#"{"id":2}"#],
        "its own list replaces the default"
    );
}

#[test]
fn the_cursor_and_the_primary_key_read_transformed_fields() {
    let srv = serve(|r| {
        let since = r.param("since").unwrap_or("").to_owned();
        let all = [
            (1, "2024-02-01T00:00:00Z"),
            (2, "2024-02-02T00:00:00Z"),
            (2, "2024-02-02T00:00:00Z"),
            (3, "2024-02-03T00:00:00Z"),
        ];
        let items: Vec<Value> = all
            .iter()
            .filter(|(_, at)| *at >= since.as_str())
            .map(|(id, at)| json!({"uid": id, "attributes": {"modified": at}}))
            .collect();
        Reply::json(json!({ "items": items }).to_string())
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  events:
    path: /events
    records: $.items[*]
    primary_key: id
    dedup: true
    transform:
      - lift: attributes
      - rename: { uid: id }
    incremental:
      cursor_field: modified
      param: since
      start: "2024-01-01T00:00:00Z"
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        sb.ids("events"),
        vec![1, 2, 3],
        "the repeat of 2 was deduplicated by the renamed key"
    );
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        srv.param_seq("/events", "since")[1].as_deref(),
        Some("2024-02-03T00:00:00Z"),
        "the cursor came from the lifted field"
    );
    assert_eq!(
        sb.ids("events"),
        vec![1, 2, 3],
        "the boundary record is recognised in its transformed form"
    );
}

#[test]
fn a_failing_step_names_the_stream_and_the_step() {
    let srv = serve(|_| Reply::json(r#"{"items": [{"id": 1, "p": "text"}]}"#));
    let sb = Sandbox::new();
    sb.spec(&spec(
        "  items:\n    path: /items\n    records: $.items[*]\n    transform:\n      - add: { n: \"{{ record.id }}\" }\n      - lift: p\n",
    ));
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["streams.items.transform[1] (lift): `p` is a string, not an object"]);
}

#[test]
fn validate_points_at_bad_steps() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    transform:
      - remove: ["a..b", "$.c"]
      - add: { n: "{{ recrd.id }}", "": "x" }
      - rename: { a: "" }
"#,
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:13:18: error: `a..b` has an empty segment",
            "spec.yaml:13:26: error: `$.c` looks like a JSONPath",
            "spec.yaml:14:23: error: unknown variable `recrd`",
            "did you mean `record`?",
            "spec.yaml:14:37: error: a field path is empty",
            "spec.yaml:15:22: error: a field path is empty",
        ]);
    let path = sb.spec(&spec_full(
        "  key: { type: string, secret: true }",
        "",
        "  items:\n    path: /items\n    records: $.items[*]\n    transform:\n      - lfit: p\n  other:\n    path: /items\n    records: $.items[*]\n    transform:\n      - add: { k: \"{{ config.key }}\" }\n",
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:14:9: error: unknown key `lfit`; expected one of",
            "did you mean `lift`?",
            "spec.yaml:19:19: error: `config.key` is a secret",
        ]);
}

const FAMILY: &str = r#"
  tickets:
    path: /tickets
    records: $.items[*]
    primary_key: id
    incremental:
      cursor_field: updated_at
      start: "2024-01-01T00:00:00Z"
  comments:
    parent: { stream: tickets, key: id, all_records: true }
    path: "/tickets/{{ parent.id }}/comments"
    records: $.items[*]
  history:
    parent: { stream: tickets, key: id }
    path: "/tickets/{{ parent.id }}/history"
    records: $.items[*]
"#;

#[test]
fn a_child_with_all_records_visits_unchanged_parents_too() {
    let srv = serve(|r| match r.path.as_str() {
        "/tickets" => Reply::json(
            r#"{"items": [{"id": 1, "updated_at": "2024-02-01T00:00:00Z"}, {"id": 2, "updated_at": "2024-02-02T00:00:00Z"}]}"#,
        ),
        _ => Reply::json(r#"{"items": [{"n": 1}]}"#),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(FAMILY));
    sb.sync(&srv, &[]).expect_code(0);
    let visits = |kind: &str| {
        srv.requests()
            .iter()
            .filter(|r| r.path.ends_with(kind))
            .count()
    };
    assert_eq!((visits("/comments"), visits("/history")), (2, 2));
    // Nothing changed: the parent writes nothing, only the `all_records` child runs.
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.ids("tickets"), vec![1, 2]);
    assert_eq!((visits("/comments"), visits("/history")), (4, 2));
}

#[test]
fn validate_refuses_all_records_under_a_parent_that_is_not_incremental() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec(&FAMILY.replace(
        "    incremental:\n      cursor_field: updated_at\n      start: \"2024-01-01T00:00:00Z\"\n",
        "",
    )));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:14:41: error: `all_records` is only meaningful under an incremental parent",
        ]);
}

/// HubSpot's contacts as its API holds them: properties nested, archived ones apart.
fn contacts() -> Vec<Value> {
    (1..=5)
        .map(|n| {
            json!({
                "id": n.to_string(),
                "properties": {
                    "createdate": "2024-01-01T00:00:00Z",
                    "email": format!("c{n}@example.com"),
                    "firstname": format!("First{n}"),
                    "lastname": if n == 2 { Value::Null } else { json!(format!("Last{n}")) },
                    "lastmodifieddate": format!("2024-03-0{n}T00:00:00Z"),
                    "hs_object_id": n.to_string(),
                    "lifecyclestage": "lead",
                    "hs_internal": "not asked for"
                },
                "createdAt": "2024-01-01T00:00:00Z",
                "updatedAt": format!("2024-03-0{n}T00:00:00Z"),
                "archived": n == 4
            })
        })
        .collect()
}

/// The v3 list endpoint: bearer auth, `limit` (at most 100), `after`, `archived`,
/// `properties` (only those asked for come back, plus HubSpot's three own).
fn hubspot(r: &support::Logged, data: &[Value]) -> Reply {
    if r.header("authorization") != Some("Bearer pat-test") {
        return Reply::status(
            401,
            r#"{"status":"error","message":"Authentication credentials not found.","category":"INVALID_AUTHENTICATION"}"#,
        );
    }
    if let Some(id) = r.path.strip_prefix("/crm/v4/objects/contacts/") {
        let id = id.trim_end_matches("/associations/companies");
        return Reply::json(
            json!({"results": [{"toObjectId": 100 + id.parse::<u64>().unwrap_or(0), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}]}]}).to_string(),
        );
    }
    if r.path != "/crm/v3/objects/contacts" {
        return Reply::status(404, r#"{"status":"error","message":"not found"}"#);
    }
    let limit = r.num("limit", 10);
    if limit > 100 {
        return Reply::status(
            400,
            r#"{"status":"error","message":"limit must be at most 100"}"#,
        );
    }
    let archived = r.param("archived") == Some("true");
    let asked: Vec<&str> = r.param("properties").unwrap_or("").split(',').collect();
    let after: usize = r.param("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let matching: Vec<Value> = data
        .iter()
        .filter(|c| c["archived"] == archived)
        .filter(|c| {
            c["id"]
                .as_str()
                .and_then(|i| i.parse::<usize>().ok())
                .unwrap_or(0)
                > after
        })
        .cloned()
        .collect();
    // Two per page, whatever `limit` says, so paging is exercised.
    let page: Vec<Value> = matching
        .iter()
        .take(2.min(limit))
        .map(|c| {
            let mut c = c.clone();
            if let Some(p) = c["properties"].as_object_mut() {
                p.retain(|k, _| {
                    asked.contains(&k.as_str())
                        || ["createdate", "lastmodifieddate", "hs_object_id"].contains(&k.as_str())
                });
            }
            c
        })
        .collect();
    let mut body = json!({ "results": page });
    if matching.len() > 2
        && let Some(last) = page.last()
    {
        body["paging"] = json!({"next": {"after": last["id"], "link": "https://api.hubapi.com/crm/v3/objects/contacts?after=x"}});
    }
    Reply::json(body.to_string())
}

#[test]
fn hubspot_crm_contacts_are_lifted_filtered_and_incremental() {
    let data = std::sync::Arc::new(std::sync::Mutex::new(contacts()));
    let d = data.clone();
    let srv = serve(move |r| hubspot(r, &d.lock().unwrap()));
    let sb = Sandbox::new();
    sb.write(
        "spec.yaml",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../connectors/hubspot_crm.yaml"
        ))
        .unwrap(),
    );
    let args = [
        "--set",
        "token=pat-test",
        "--set",
        "start_date=2024-03-02T00:00:00Z",
    ];
    sb.sync(&srv, &args)
        .expect_code(0)
        .expect_no_leak("pat-test");
    let got = sb.records("contacts");
    let ids: Vec<&str> = got.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["2", "3", "5"],
        "1 is before the start, 4 is archived: {got:?}"
    );
    assert_eq!(
        got[1],
        json!({"id": "3", "email": "c3@example.com", "firstname": "First3", "lastname": "Last3", "lifecyclestage": "lead", "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-03-03T00:00:00Z", "archived": false, "name": "First3 Last3"})
    );
    assert_eq!(got[0]["name"], "First2", "a null last name is left out");
    let first: Vec<_> = srv.requests_to("/crm/v3/objects/contacts");
    assert_eq!(first.len(), 2, "two pages");
    assert_eq!(first[1].param("after"), Some("2"));
    assert_eq!(first[0].param("archived"), Some("false"));
    assert_eq!(
        sb.records("contact_companies").len(),
        4,
        "all_records: contact 1, older than the start, is visited too"
    );

    // Contact 1 changes; the next run writes only it, yet visits every contact's companies.
    data.lock().unwrap()[0]["updatedAt"] = json!("2024-03-09T00:00:00Z");
    let before = srv.requests().len();
    sb.sync(&srv, &args).expect_code(0);
    let ids: Vec<String> = sb
        .records("contacts")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["2", "3", "5", "1"]);
    let assoc = srv.requests()[before..]
        .iter()
        .filter(|r| r.path.starts_with("/crm/v4/"))
        .count();
    assert_eq!(
        assoc, 4,
        "all_records: every contact fetched, changed or not"
    );
    let companies = sb.records("contact_companies");
    assert_eq!(
        companies.len(),
        8,
        "appended: every contact's companies again"
    );
    assert!(
        companies.contains(&json!({"contact_id": "5", "toObjectId": 105, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}]})),
        "{companies:?}"
    );
}
