//! The catalogs teams keep, read as they write them: the examples under
//! `examples/catalog/` (Backstage's entity shapes, a PagerDuty export, a Devloom file).

use super::*;
use crate::catalog::{CatalogDependency, NameRule};
use crate::codec::{DecodeOptions, Expect, Message, decode};
use crate::impact::Criticality;

const BACKSTAGE: &str = include_str!("../../../../examples/catalog/catalog-info.yaml");
const PAGERDUTY: &str = include_str!("../../../../examples/catalog/pagerduty-export.json");
const DEVLOOM: &str = include_str!("../../../../examples/catalog/devloom-catalog.yaml");

fn deps(c: &Catalog) -> Vec<(&str, &str, Option<Criticality>, Option<&str>)> {
    c.dependencies
        .iter()
        .map(|d| (d.caller.as_str(), d.callee.as_str(), d.criticality, d.via.as_deref()))
        .collect()
}

#[test]
fn backstage_entities_resolve_references_by_kind_and_namespace_defaults() {
    let c = read_catalog(CatalogFormat::Backstage, BACKSTAGE).unwrap();
    let entities: Vec<&str> = c.services.iter().map(|s| s.key()).collect();
    assert_eq!(
        entities,
        [
            "component:default/frontend",
            "component:default/checkout",
            "component:payments/payments-service",
            "component:default/ledger",
            "resource:payments/orders-db",
            "component:default/recommendations"
        ],
        "Components and Resources; the Group, System and API are not services"
    );
    let payments = &c.services[2];
    assert_eq!(
        payments.owner.as_deref(),
        Some("group:payments/team-checkout"),
        "spec.owner: kind group, own namespace"
    );
    assert_eq!(
        payments.system.as_deref(),
        Some("system:default/shop"),
        "spec.system: kind system, namespace given"
    );
    let db = &c.services[4];
    assert_eq!(db.service_name.as_deref(), Some("postgres"), "the devloom.dev/service-name annotation");
    assert_eq!(db.kind.as_deref(), Some("Resource"));
    assert_eq!(c.services[1].pagerduty_service_id.as_deref(), Some("PCHKOUT"), "pagerduty.com/service-id");
    assert_eq!(
        c.services[0].pagerduty_integration_key.as_deref(),
        Some("0123456789abcdef0123456789abcdef"),
        "pagerduty.com/integration-key"
    );
    assert_eq!(c.services[5].lifecycle.as_deref(), Some("experimental"));
    assert_eq!(
        deps(&c),
        vec![
            ("component:default/frontend", "component:default/checkout", None, None),
            ("component:default/frontend", "component:default/catalog", None, None),
            ("component:default/frontend", "component:default/recommendations", None, None),
            ("component:default/checkout", "component:default/cart", None, None),
            ("component:default/checkout", "component:default/inventory", None, None),
            (
                "component:default/checkout",
                "component:payments/payments-service",
                None,
                Some("api:payments/payments-api")
            ),
            ("component:payments/payments-service", "resource:payments/orders-db", None, None),
            ("component:payments/payments-service", "component:default/ledger", None, None),
        ],
        "dependsOn with kind and namespace, kind only, neither; consumesApis to the API's provider"
    );
}

#[test]
fn backstage_files_resolve_references_across_each_other() {
    let api = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: pay}\nspec: {providesApis: [pay-api]}\n";
    let user = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: shop}\nspec:\n  consumesApis: [api:pay-api]\n  dependsOn: [db]\n---\napiVersion: backstage.io/v1beta1\nkind: Resource\nmetadata: {name: db}\n";
    let c = read_backstage(&[api, user]).unwrap();
    assert_eq!(
        deps(&c),
        vec![
            ("component:default/shop", "resource:default/db", None, None),
            ("component:default/shop", "component:default/pay", None, Some("api:default/pay-api")),
        ],
        "a kind-less dependsOn names the Resource when no Component has the name"
    );
}

#[test]
fn pagerduty_export_gives_services_teams_policies_and_critical_dependencies() {
    let c = read_catalog(CatalogFormat::Pagerduty, PAGERDUTY).unwrap();
    let names: Vec<(&str, Option<&str>)> =
        c.services.iter().map(|s| (s.name.as_str(), s.kind.as_deref())).collect();
    assert_eq!(
        names,
        [
            ("Checkout Service", Some("service")),
            ("Payments Service", Some("service")),
            ("Ledger Service", Some("service")),
            ("Online Shop", Some("business_service"))
        ]
    );
    let checkout = &c.services[0];
    assert_eq!(checkout.entity.as_deref(), Some("pagerduty:PCHKOUT"));
    assert_eq!(checkout.escalation_policy.as_deref(), Some("Checkout On-Call"), "escalation_policy.summary");
    assert_eq!(checkout.teams, ["Checkout"], "teams[].summary");
    assert_eq!(c.services[3].teams, ["Checkout"], "a business service's team");
    let critical = Some(Criticality::Critical);
    assert_eq!(
        deps(&c),
        vec![
            ("pagerduty:PBSHOP1", "pagerduty:PCHKOUT", critical, None),
            ("pagerduty:PCHKOUT", "pagerduty:PPAYMNT", critical, None),
            ("pagerduty:PPAYMNT", "pagerduty:PLEDGER", critical, None),
        ],
        "dependent_service depends on supporting_service"
    );
}

#[test]
fn devloom_catalog_marks_optional_dependencies_and_maps_names() {
    let c = read_catalog(CatalogFormat::Devloom, DEVLOOM).unwrap();
    assert_eq!(
        c.dependencies[0],
        CatalogDependency {
            caller: "frontend".into(),
            callee: "recommendations".into(),
            criticality: Some(Criticality::Optional),
            via: None
        }
    );
    assert_eq!(c.names["pagerduty:PBSHOP1"], "gateway");
    assert_eq!(c.rules[0].apply("payments-service").as_deref(), Some("payments"));
    assert_eq!(c.rules[0].apply("checkout"), None, "a strip that does not match does not apply");
    assert_eq!(c.rules[1].apply("Checkout Service").as_deref(), Some("checkout"));
    let prefix = NameRule { add_prefix: Some("shop-".into()), ..NameRule::default() };
    assert_eq!(prefix.apply("cart").as_deref(), Some("shop-cart"));
}

fn error(format: CatalogFormat, text: &str) -> String {
    read_catalog(format, text).unwrap_err().to_string()
}

#[test]
fn malformed_catalogs_name_the_document_and_the_path() {
    let bad_list = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: a}\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: b}\nspec: {dependsOn: component:c}\n";
    let e = error(CatalogFormat::Backstage, bad_list);
    assert!(e.starts_with("Backstage entity YAML: invalid at document 2, spec.dependsOn: "), "{e}");
    let bad_ref = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: b}\nspec: {dependsOn: [ok, 'component:']}\n";
    let e = error(CatalogFormat::Backstage, bad_ref);
    assert!(e.contains("document 1, spec.dependsOn[1]: \"component:\" is not an entity reference"), "{e}");
    let no_name = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {title: x}\n";
    assert!(error(CatalogFormat::Backstage, no_name).contains("document 1, metadata: missing field `name`"));
    let syntax = "apiVersion: backstage.io/v1alpha1\nkind: [Component\n";
    assert!(
        error(CatalogFormat::Backstage, syntax).starts_with("Backstage entity YAML: invalid at (YAML): ")
    );
    let criticality = "apiVersion: devloom.dev/v1\nkind: Catalog\ndependencies:\n  - {caller: a, callee: b, criticality: sometimes}\n";
    let e = error(CatalogFormat::Devloom, criticality);
    assert!(
        e.starts_with(
            "Devloom catalog: invalid at document 1, dependencies[0].criticality: unknown variant `sometimes`"
        ),
        "{e}"
    );
    let unknown = "apiVersion: devloom.dev/v1\nkind: Catalog\ndepedencies: []\n";
    assert!(
        error(CatalogFormat::Devloom, unknown).contains("unknown field `depedencies`"),
        "a typo is not ignored"
    );
    let version = "apiVersion: devloom.dev/v2\nkind: Catalog\n";
    assert!(error(CatalogFormat::Devloom, version).contains("document 1, apiVersion: is \"devloom.dev/v2\""));
    let pd = r#"{"relationships": [{"supporting_service": {"id": "P1"}}]}"#;
    let e = error(CatalogFormat::Pagerduty, pd);
    assert!(e.contains("document 1, relationships[0]: missing field `dependent_service`"), "{e}");
}

fn decode_catalog(payload: &[u8], key: Option<&[u8]>) -> Result<(Format, Vec<Event>), DecodeError> {
    let msg = Message { payload, headers: &[], fallback_time_ns: Some(7), key };
    let mut out = Vec::new();
    decode(&msg, Expect::Catalog, &DecodeOptions::default(), &mut out).map(|f| (f, out))
}

#[test]
fn a_catalog_message_is_one_snapshot_sourced_by_its_key() {
    let (format, events) = decode_catalog(BACKSTAGE.as_bytes(), Some(b"backstage-prod")).unwrap();
    assert_eq!(format, Format::BackstageEntities, "YAML sniffed by apiVersion");
    let [Event::Catalog(s)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!((s.source.as_str(), s.format, s.time_ns), ("backstage-prod", CatalogFormat::Backstage, 7));
    assert_eq!(s.catalog.services.len(), 6);
    let (format, events) = decode_catalog(PAGERDUTY.as_bytes(), None).unwrap();
    assert_eq!(format, Format::PagerDutyServices, "JSON sniffed by its lists");
    let [Event::Catalog(s)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(s.source, "pagerduty", "no key: the format's name");
    assert_eq!(decode_catalog(DEVLOOM.as_bytes(), None).unwrap().0, Format::DevloomCatalog);
    let pages = format!("{PAGERDUTY}\n---\n{{\"services\": [{{\"id\": \"PX\", \"name\": \"x\"}}]}}\n");
    let (format, events) = decode_catalog(pages.as_bytes(), None).unwrap();
    let [Event::Catalog(s)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!((format, s.catalog.services.len()), (Format::PagerDutyServices, 5), "an export page by page");
    let alert = br#"{"service": "a", "status": "firing"}"#;
    let e = decode_catalog(alert, None).unwrap_err().to_string();
    assert_eq!(e, "Devloom alert JSON is not accepted on a catalog input");
    let e = decode_catalog(b"just: [a, list]\n", None).unwrap_err().to_string();
    assert!(e.starts_with("unrecognized payload for catalog input: YAML whose first document"), "{e}");
    assert!(e.ends_with("(accepted: CloudEvents structured JSON, Backstage entity YAML, PagerDuty services export, Devloom catalog)"), "{e}");
}
