use std::collections::BTreeMap;

use super::*;

fn user(name: &str, groups: &[&str]) -> Context {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    Context::new()
        .with("userId", name)
        .with("groups", expression_groups(&groups))
}

fn proxy(runtime: &[(&str, &str)]) -> Value {
    let runtime: BTreeMap<String, String> = runtime
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Object::new(Kind::Proxy)
        .with("userId", "ann")
        .with("specId", "app")
        .with("runtimeValues", &runtime)
        .into()
}

fn eval(src: &str, ctx: &Context) -> Value {
    Template::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(ctx)
        .unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn render(src: &str, ctx: &Context) -> String {
    Template::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .render(ctx)
        .unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn truth(src: &str, ctx: &Context) -> bool {
    eval(src, ctx)
        .to_bool()
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn the_forms_real_configs_write() {
    let host = |h: &str| user("jack", &["admins"]).with("serverName", h);
    let title =
        "#{serverName == 'shinyproxy-demo.local' ? 'ShinyProxy Demo' : 'ShinyProxy Demo 2'}";
    assert_eq!(
        render(title, &host("shinyproxy-demo.local")),
        "ShinyProxy Demo"
    );
    assert_eq!(render(title, &host("other.local")), "ShinyProxy Demo 2");
    let logo = "#{serverName == 'a' ? 'https://x/logo.png' : null}";
    assert_eq!(render(logo, &host("b")), "", "null gives no logo");
    assert!(truth("#{serverName == 'a'}", &host("a")));

    let ctx = user("ann", &["admins"]).with(
        "proxy",
        proxy(&[("SHINYPROXY_PUBLIC_PATH", "/app_proxy/1/")]),
    );
    assert_eq!(
        render("#{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PATH')}", &ctx),
        "/app_proxy/1/"
    );
    assert_eq!(
        render(
            "#{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PATH').replaceFirst('/$','')}",
            &ctx
        ),
        "/app_proxy/1"
    );
    assert_eq!(
        render(
            "--base_url=#{proxy.getRuntimeValue(\"SHINYPROXY_PUBLIC_PATH\")}",
            &ctx
        ),
        "--base_url=/app_proxy/1/"
    );
    assert_eq!(
        render("/home/#{proxy.userId}:/data", &ctx),
        "/home/ann:/data"
    );
    assert_eq!(render("#{proxy.getUserId()}", &ctx), "ann");
    assert_eq!(
        render("my-app-#{proxy.specId}-#{proxy.userId}", &ctx),
        "my-app-app-ann"
    );
    assert_eq!(eval("#{100000 + 60000}", &ctx), Value::Int(160_000));
    assert_eq!(
        render("x #{groups}", &ctx),
        "x ADMINS",
        "groups upper-cased"
    );
    assert_eq!(render("#{groups}", &ctx), "[ADMINS]");
    assert!(truth("#{groups.contains('ADMINS')}", &ctx));
    assert!(truth("#{true}", &ctx));
    assert_eq!(
        render(
            "#{proxy.getRuntimeValueOrDefault('SHINYPROXY_REALM_ID', 'none')}",
            &ctx
        ),
        "none"
    );
}

#[test]
fn objects_of_the_login() {
    let claims = BTreeMap::from([
        ("sub".to_string(), Value::from("u-1")),
        ("email".to_string(), Value::from("ann@x.org")),
        ("roles".to_string(), Value::from(vec!["a", "b"])),
    ]);
    let oidc = Object::new(Kind::OidcUser).with("attributes", Value::Map(claims));
    let ctx = user("ann", &[]).with("oidcUser", oidc);
    assert_eq!(render("pvc-#{oidcUser.attributes['sub']}", &ctx), "pvc-u-1");
    assert_eq!(render("#{oidcUser.attributes.email}", &ctx), "ann@x.org");
    assert_eq!(
        render("#{oidcUser.getClaimAsString('email')}", &ctx),
        "ann@x.org"
    );
    assert!(truth(
        "#{oidcUser.getClaimAsStringList('roles').contains('b')}",
        &ctx
    ));
    assert_eq!(render("#{oidcUser.attributes['nope']}", &ctx), "");

    let json = Value::from(serde_json::json!({"data": {"groups": ["x", "y"]}}));
    let ctx = Context::new().with("json", json);
    assert_eq!(
        eval("#{json.get('data').get('groups')}", &ctx),
        Value::from(vec!["x", "y"])
    );
}

#[test]
fn operators() {
    let ctx = user("jo.doe", &["analysts", "ROLE_dev"]);
    for (src, want) in [
        ("#{groups.contains('analysts')}", true),
        ("#{groups.contains('DEV')}", true),
        ("#{groups.contains('x') or userId == 'jo.doe'}", true),
        ("#{groups.contains('x') || !groups.contains('dev')}", false),
        ("#{not (userId eq 'x') and userId ne 'y'}", true),
        ("#{userId matches '[a-z]+\\.[a-z]+'}", true),
        ("#{userId matches '[a-z]+'}", false),
        ("#{userId.startsWith('jo') && userId.endsWith('doe')}", true),
        ("#{userId.toUpperCase() == 'JO.DOE'}", true),
        ("#{isOneOf(userId, 'a', 'jo.doe')}", true),
        ("#{isOneOfIgnoreCase(userId, 'JO.DOE')}", true),
        ("#{userId.isOneOf('a', 'b')}", false),
        ("#{groups.isOneOf('ANALYSTS', 'b')}", true),
        ("#{{'a', 'jo.doe'}.contains(userId)}", true),
        ("#{{'k': 'v'}['k'] == 'v'}", true),
        ("#{groups.size() > 1}", true),
        ("#{groups.isEmpty()}", false),
        ("#{userId.split('\\.').size() == 2}", true),
        ("#{userId.split('\\.')[1] == 'doe'}", true),
        ("#{userId.length() >= 6}", true),
        ("#{1 == 1.0}", true),
        ("#{'1' == 1}", false),
        ("#{null == null}", true),
        ("#{userId == 'it''s'}", false),
        ("#{3 % 2 == 1 and 7 / 2 == 3 and 2 - 3 < 0}", true),
    ] {
        assert_eq!(truth(src, &ctx), want, "{src}");
    }
    assert_eq!(render("#{null ?: 'fallback'}", &ctx), "fallback");
    assert_eq!(render("#{'' ?: 'fallback'}", &ctx), "fallback");
    assert_eq!(render("#{userId ?: 'fallback'}", &ctx), "jo.doe");
    assert_eq!(render("#{oidcUser?.attributes}", &ctx), "");
    assert_eq!(render("#{'a' + null}", &ctx), "anull");
    assert_eq!(render("#{'a' + 1}", &ctx), "a1");
    assert_eq!(render("#{userId.substring(0, 2)}", &ctx), "jo");
    assert_eq!(render("#{userId.replace('.', '_')}", &ctx), "jo_doe");
    assert_eq!(render("#{toList(' a, b ,,c')}", &ctx), "[a, b, c]");
    assert_eq!(render("#{toLowerCaseList('A;B', ';')}", &ctx), "[a, b]");
    assert_eq!(
        render("#{'}' + userId}", &ctx),
        "}jo.doe",
        "a brace in quotes"
    );
}

#[test]
fn what_fails_at_run_time() {
    let ctx = user("ann", &[]).with("proxy", proxy(&[]));
    for src in [
        "#{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PATH')}",
        "#{oidcUser.attributes}",
        "#{groups[3]}",
        "#{null and true}",
        "#{userId > 3}",
        "#{proxy.nothing}",
        "#{9223372036854775807 + 1}",
        "#{1 / 0}",
    ] {
        let t = Template::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(t.eval(&ctx).is_err(), "{src}");
    }
    assert!(Value::Null.to_bool().is_err(), "a null rule is no answer");
    assert!(Value::from("maybe").to_bool().is_err());
    assert_eq!(Value::from("Yes").to_bool(), Ok(true));
}

#[test]
fn unsafe_and_malformed_expressions_are_refused_with_their_place() {
    for (src, at, says) in [
        (
            "#{T(java.lang.Runtime).getRuntime().exec('x')}",
            2,
            "type references",
        ),
        ("#{@environment.getProperty('x')}", 2, "bean references"),
        ("#{&factory}", 2, "bean references"),
        ("#{new java.io.File('/')}", 2, "constructors"),
        ("#{#systemProperties}", 2, "variables"),
        ("#{userId = 'root'}", 9, "read-only"),
        ("#{groups.?[true]}", 8, "selection"),
        ("#{groups.![#this]}", 8, "projection"),
        ("ab#{userId", 2, "not closed"),
        ("#{ }", 0, "no expression"),
        ("#{userId == }", 12, "ends too early"),
        ("#{userId matches '('}", 17, "regular expression"),
        ("#{userId matches '(?=a)'}", 17, "regular expression"),
        ("#{userId ; 1}", 9, "not part"),
    ] {
        let e = Template::parse(src).expect_err(src);
        assert_eq!(e.at, at, "{src}: {e}");
        assert!(e.message.contains(says), "{src}: {e}");
    }
    let deep = format!("#{{{}1{}}}", "(".repeat(200), ")".repeat(200));
    assert!(Template::parse(&deep).is_err());
    let long = format!("#{{'{}'}}", "a".repeat(10_001));
    assert!(Template::parse(&long).is_err());
}

#[test]
fn names_methods_and_runtime_values_are_checked_for_their_moment() {
    let check = |src: &str, phase| Template::parse(src).expect(src).check(phase);
    assert!(check("#{serverName == 'a'}", Phase::Access).is_ok());
    assert!(
        check(
            "#{proxy.getRuntimeValue('SHINYPROXY_PUBLIC_PATH')}",
            Phase::Launch
        )
        .is_ok()
    );
    let e = check("#{user == 'a'}", Phase::Access).expect_err("unknown");
    assert!(e.message.contains("did you mean 'userId'"), "{e}");
    assert_eq!(e.at, 2);
    let e = check("#{serverName}", Phase::Launch).expect_err("not at launch");
    assert!(
        e.message.contains("not available when an app starts"),
        "{e}"
    );
    let e = check("#{proxy.userId}", Phase::Access).expect_err("no proxy in access");
    assert!(e.message.contains("not available in an access rule"), "{e}");
    let e = check("#{userId.toUppercase()}", Phase::Access).expect_err("method");
    assert!(e.message.contains("did you mean 'toUpperCase'"), "{e}");
    let e = check("#{proxy.getRuntimeValue('SHINYPROXY_USER')}", Phase::Launch).expect_err("key");
    assert!(
        e.message
            .contains("SHINYPROXY_USER' is not a runtime value"),
        "{e}"
    );
    let e = check("#{exec('x')}", Phase::Access).expect_err("function");
    assert!(e.message.contains("unknown function"), "{e}");
    assert!(check("#{oidcUser.idToken.tokenValue}", Phase::Logout).is_ok());
    assert!(check("#{userId}", Phase::Logout).is_err());
    assert!(check("#{json.get('groups')}", Phase::WebServiceGroups).is_ok());
}

#[test]
fn names_vestibule_does_not_hand_in_yet_are_refused_as_such() {
    let e = Template::parse("#{oidcUser.attributes.email == 'a'}")
        .expect("parses")
        .check(Phase::Access)
        .expect_err("not offered yet");
    assert!(e.message.contains("does not offer it"), "{e}");
}
