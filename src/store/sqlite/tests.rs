use super::*;
use crate::account::{HostOrigin, Reauth};
use crate::report::{Method, Provider};

fn store() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    prepare(&mut c).unwrap();
    prepare(&mut c).unwrap();
    c
}

fn alice(host: &str) -> NewAccount {
    NewAccount {
        account_id: "acct_1".into(),
        client_id: "client_1".into(),
        email: "alice@example.test".into(),
        name: "Alice".into(),
        provider: Provider::Exchange,
        exchange_server_host: host.into(),
        origin: HostOrigin::Discovered(Method::PoxDomain),
        activesync_versions: vec!["16.1".to_owned()].into(),
        scopes: Scopes::parse("email.read_only").unwrap(),
        username: "alice".into(),
        sealed_secret: vec![1, 2, 3],
        now: 100,
        reauth: Reauth::None,
    }
}

fn code(c: &mut Connection, hash: &[u8], account: NewAccount, expires_at: i64) {
    let code = NewCode {
        code_hash: hash.to_vec(),
        client_id: "client_1".into(),
        expires_at,
        account,
        binding: CodeBinding::default(),
    };
    create_code(c, &code).unwrap();
}

fn token(hash: &[u8]) -> NewToken {
    NewToken {
        token_hash: hash.to_vec(),
        expires_at: 1000,
    }
}

fn checks(may_replace: ReplaceCheck) -> RedeemChecks {
    RedeemChecks {
        binding: Box::new(|_| Ok(())),
        may_replace,
    }
}

fn redeem(c: &mut Connection, hash: &[u8], client: &str, t: &[u8], now: i64) -> Redemption {
    redeem_code(
        c,
        hash,
        client,
        &token(t),
        checks(Box::new(|_, _| Ok(()))),
        now,
    )
    .unwrap()
}

#[test]
fn nothing_is_saved_until_the_code_is_redeemed() {
    let mut c = store();
    code(&mut c, b"code", alice("mail.example.test"), 200);
    assert!(find_account(&mut c, "acct_1").unwrap().is_none());
    assert!(matches!(
        redeem(&mut c, b"code", "client_1", b"t1", 150),
        Redemption::Issued(_)
    ));
    let saved = find_account(&mut c, "acct_1").unwrap().unwrap();
    assert_eq!(saved.exchange_server_host, "mail.example.test");
}

#[test]
fn a_code_is_redeemed_once_and_a_replay_revokes_the_token() {
    let mut c = store();
    code(&mut c, b"code", alice("mail.example.test"), 200);
    assert!(matches!(
        redeem(&mut c, b"code", "other", b"t0", 150),
        Redemption::Unknown
    ));
    assert!(matches!(
        redeem(&mut c, b"code", "client_1", b"t1", 150),
        Redemption::Issued(_)
    ));
    assert!(account_for_token(&mut c, b"t1", 150).unwrap().is_some());
    assert!(matches!(
        redeem(&mut c, b"code", "client_1", b"t2", 151),
        Redemption::Replayed
    ));
    assert!(
        account_for_token(&mut c, b"t1", 151).unwrap().is_none(),
        "revoked"
    );
    assert!(account_for_token(&mut c, b"t2", 151).unwrap().is_none());
}

#[test]
fn replacing_an_account_revokes_its_tokens_and_a_refusal_changes_nothing() {
    let mut c = store();
    code(&mut c, b"first", alice("mail.example.test"), 200);
    redeem(&mut c, b"first", "client_1", b"t1", 110);
    code(&mut c, b"second", alice("exch01.example.test"), 200);
    let refused = redeem_code(
        &mut c,
        b"second",
        "client_1",
        &token(b"t2"),
        checks(Box::new(|existing, _| {
            existing.map_or(Ok(()), |_| Err("exists"))
        })),
        120,
    )
    .unwrap();
    assert!(matches!(refused, Redemption::Refused("exists")));
    assert!(account_for_token(&mut c, b"t1", 120).unwrap().is_some());
    let host = find_account(&mut c, "acct_1").unwrap().unwrap();
    assert_eq!(host.exchange_server_host, "mail.example.test");
    code(&mut c, b"third", alice("exch01.example.test"), 200);
    assert!(matches!(
        redeem(&mut c, b"third", "client_1", b"t3", 130),
        Redemption::Issued(_)
    ));
    assert!(account_for_token(&mut c, b"t1", 130).unwrap().is_none());
    let moved = account_for_token(&mut c, b"t3", 130).unwrap().unwrap();
    assert_eq!(moved.exchange_server_host, "exch01.example.test");
}

#[test]
fn codes_and_tokens_end() {
    let mut c = store();
    code(&mut c, b"code", alice("mail.example.test"), 200);
    assert!(matches!(
        redeem(&mut c, b"code", "client_1", b"t", 200),
        Redemption::Expired
    ));
    code(&mut c, b"code2", alice("mail.example.test"), 300);
    redeem(&mut c, b"code2", "client_1", b"t2", 250);
    assert!(account_for_token(&mut c, b"t2", 999).unwrap().is_some());
    assert!(account_for_token(&mut c, b"t2", 1000).unwrap().is_none());
    assert!(revoke_token(&mut c, b"t2", Some("other")).is_ok_and(|r| !r));
    let swept = sweep(&mut c, 1000, 0).unwrap();
    assert_eq!((swept.codes, swept.tokens), (2, 1));
}

#[test]
fn accounts_are_one_per_client_and_email() {
    let c = store();
    let first = save_account(&c, &alice("a.example.test")).unwrap();
    let second = save_account(&c, &alice("b.example.test")).unwrap();
    assert_eq!(first, second);
}

#[test]
fn a_row_the_model_cannot_read_is_corrupt_not_a_default() {
    let mut c = store();
    save_account(&c, &alice("a.example.test")).unwrap();
    assert_eq!(
        find_account(&mut c, "acct_1").unwrap().unwrap().origin,
        HostOrigin::Discovered(Method::PoxDomain)
    );
    c.execute("UPDATE accounts SET discovery_method = 'guessed'", [])
        .unwrap();
    assert!(
        find_account(&mut c, "acct_1").is_err(),
        "no fallback to another method"
    );
}

#[test]
fn cache_entries_expire() {
    let mut c = store();
    let entry = CachedDiscovery {
        domain: "example.test".into(),
        host: "mail.example.test".into(),
        method: Method::Srv,
        activesync_url: String::new(),
        provider: Provider::Exchange,
        expires_at: 500,
    };
    cache_discovery(&mut c, &entry).unwrap();
    assert!(
        cached_discovery(&mut c, "example.test", 499)
            .unwrap()
            .is_some()
    );
    assert!(
        cached_discovery(&mut c, "example.test", 500)
            .unwrap()
            .is_none()
    );
    forget_discovery(&mut c, "example.test").unwrap();
    assert!(
        cached_discovery(&mut c, "example.test", 0)
            .unwrap()
            .is_none()
    );
}
