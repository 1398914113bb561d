//! Accounts and sessions (docs/ACCOUNTS.md), on SQLite and on Redis: the first run's setup, signing
//! up and in, one person on several devices, sessions that end everywhere, passwords, and the
//! sign-in budget.

use crate::common;

use common::{
    Client, OWNER, OWNER_PASSWORD, RedisServer, SETUP_CODE, TempDir, TestServer, form, header,
};

const SECRET: &str = "the same secret on every node, 32+ bytes";

/// A server of its own, not set up, with `flags` (on SQLite, or on Redis with `--redis`).
async fn fresh(data: &TempDir, flags: &[&str]) -> TestServer {
    TestServer::start_unclaimed(data.path(), flags).await
}

/// Signs in as a browser at `address` behind a trusted proxy: the session cookie, if let in.
async fn sign_in_from(
    server: &TestServer,
    address: String,
    handle: &str,
    password: &str,
) -> Option<String> {
    let body = form(&[("handle", handle), ("password", password)]);
    let headers = format!("X-Forwarded-For: {address}\r\n");
    let (status, head, _) = server.post_form_with("/sign-in", &headers, &body).await;
    assert_eq!(status, 303, "{head}");
    header(&head, "set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

async fn setup_is_claimed_once(flags: &[&str]) {
    let data = TempDir::new();
    let server = fresh(&data, flags).await;
    // Until then: the setup page, and health, only.
    let (status, head, _) = server.get("/r/general").await;
    assert_eq!((status, header(&head, "location")), (303, Some("/setup")));
    let (status, _, body) = server.get("/api/rooms").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("setup_required"), "{body}");
    let (status, _, body) = server.post_form("/session", "name=Eve").await;
    assert_eq!(status, 503, "no guest before the owner: {body}");
    assert_eq!(server.get("/healthz").await.0, 200);
    let (status, _, page) = server.get("/setup").await;
    assert_eq!(status, 200);
    assert!(page.contains("Setup code"), "{page}");

    // A wrong code makes nothing.
    let owner = |code: &str, handle: &str| {
        form(&[
            ("code", code),
            ("handle", handle),
            ("name", "Owner"),
            ("password", OWNER_PASSWORD),
        ])
    };
    let (status, to, cookie) = server
        .post_as("/setup", None, &owner("WRONG-CODE-0000", "eve"))
        .await;
    assert_eq!((status, cookie), (303, None));
    assert!(to.starts_with("/setup?error=code"), "{to}");

    // Two at once with the right code (typed in small letters, with spaces): one owner.
    let typed = SETUP_CODE.to_lowercase().replace('-', " - ");
    let (one, two) = (owner(&typed, "first"), owner(SETUP_CODE, "second"));
    let (first, second) = tokio::join!(
        server.post_as("/setup", None, &one),
        server.post_as("/setup", None, &two),
    );
    let made: Vec<_> = [first, second]
        .into_iter()
        .filter_map(|(_, _, c)| c)
        .collect();
    assert_eq!(made.len(), 1, "exactly one owner");
    let me = server.who(&made[0]).await.expect("signed in");
    assert_eq!(me["name"], "Owner");
    // And then never again: the page goes, the form is answered with the sign-in page.
    let (status, head, _) = server.get("/setup").await;
    assert_eq!((status, header(&head, "location")), (303, Some("/")));
    let (status, to, cookie) = server
        .post_as("/setup", None, &owner(SETUP_CODE, "third"))
        .await;
    assert_eq!((status, to.as_str(), cookie), (303, "/sign-in", None));
    // Now the chat is served.
    assert_eq!(server.get_as("/r/general", &made[0]).await.0, 200);
}

#[tokio::test]
async fn a_fresh_server_serves_only_its_setup_until_the_owner_is_made_once() {
    setup_is_claimed_once(&[]).await;
}

#[tokio::test]
async fn on_redis_the_setup_is_claimed_once_whichever_node_is_asked() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let flags = ["--redis", url.as_str(), "--session-secret", SECRET];
    setup_is_claimed_once(&flags).await;
    // A second node knows it is set up, and the owner signs in there.
    let data = TempDir::new();
    let other = fresh(&data, &flags).await;
    let cookie = other.sign_in("first", OWNER_PASSWORD).await;
    let cookie = match cookie {
        Some(cookie) => cookie,
        None => other
            .sign_in("second", OWNER_PASSWORD)
            .await
            .expect("the owner signs in on the other node"),
    };
    assert_eq!(other.get_as("/r/general", &cookie).await.0, 200);
}

async fn one_person_on_two_devices(flags: &[&str]) {
    let data = TempDir::new();
    let mut all = vec!["--sign-up", "open"];
    all.extend_from_slice(flags);
    let server = TestServer::start_in(data.path(), &all).await;
    let laptop = server
        .sign_up("Ann", "Ann Lee", "a long enough password")
        .await
        .expect("signed up");
    let phone = server
        .sign_in("ann", "a long enough password")
        .await
        .expect("signed in on a second device");
    assert_ne!(laptop, phone, "a session per device");
    let on_laptop = Client::connect(server.addr, &laptop).await;
    let mut on_phone = Client::connect(server.addr, &phone).await;
    assert_eq!(on_laptop.id, on_phone.id, "one person");
    assert_eq!(on_phone.name, "Ann Lee");
    // Renamed on one, renamed on both.
    server.rename(&phone, "Ann").await;
    assert_eq!(server.who(&laptop).await.expect("signed in")["name"], "Ann");
    on_phone.post("p1", "from the phone").await;

    // The handle is hers: taken, whatever its case.
    let (status, to, cookie) = server
        .post_as(
            "/sign-up",
            None,
            &form(&[
                ("handle", "ANN"),
                ("name", "Other"),
                ("password", "another long password"),
            ]),
        )
        .await;
    assert_eq!((status, cookie), (303, None));
    assert!(to.starts_with("/sign-up?error=taken"), "{to}");
    // A wrong password signs nobody in, nor does an unknown handle.
    assert_eq!(server.sign_in("ann", "not her password").await, None);
    assert_eq!(
        server.sign_in("nobody", "a long enough password").await,
        None
    );

    // Signing out on the laptop ends that session: a copy of its cookie is nobody, at every door.
    let (status, _, _) = server.post_as("/session/end", Some(&laptop), "").await;
    assert_eq!(status, 303);
    assert_eq!(server.who(&laptop).await, None);
    assert_eq!(server.get_as("/api/rooms", &laptop).await.0, 401);
    assert_eq!(server.get_as("/r/general", &laptop).await.0, 303);
    let (status, head, _) = server.get_as("/account", &laptop).await;
    assert_eq!(
        (status, header(&head, "location")),
        (303, Some("/sign-in?next=/account"))
    );
    let (status, head, _) = server
        .post_form_with(
            "/account/password",
            &format!("Cookie: {laptop}\r\n"),
            "current=x&password=y&again=y",
        )
        .await;
    assert_eq!(
        (status, header(&head, "location")),
        (303, Some("/sign-in?next=/account")),
        "a form from nobody changes nothing and asks to sign in"
    );
    assert_eq!(
        Client::connect_forwarded(server.addr, &laptop, "127.0.0.1")
            .await
            .err(),
        Some(401),
        "the socket refuses it"
    );
    // The phone is still signed in.
    assert!(server.who(&phone).await.is_some());
}

#[tokio::test]
async fn one_person_signed_in_on_two_devices_is_one_person_until_one_signs_out() {
    one_person_on_two_devices(&[]).await;
}

#[tokio::test]
async fn on_redis_one_person_signed_in_on_two_devices_is_one_person_until_one_signs_out() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    one_person_on_two_devices(&["--redis", url.as_str(), "--session-secret", SECRET]).await;
}

#[tokio::test]
async fn short_and_common_passwords_bad_handles_and_closed_sign_up_are_refused() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--sign-up", "open"]).await;
    for (handle, password, error) in [
        ("ann", "short", "short"),
        ("ann", "password123", "common"),
        ("ann", "Iloveyou1", "common"),
        ("a", "a long enough password", "handle"),
        ("ann lee", "a long enough password", "handle"),
        ("аnn", "a long enough password", "handle"), // A Cyrillic а.
    ] {
        let body = form(&[("handle", handle), ("name", "Ann"), ("password", password)]);
        let (status, to, cookie) = server.post_as("/sign-up", None, &body).await;
        assert_eq!((status, cookie), (303, None), "{handle} {password}");
        assert!(
            to.starts_with(&format!("/sign-up?error={error}")),
            "{handle} {password}: {to}"
        );
    }
    // The page says why, in words.
    let (_, _, page) = server.get("/sign-up?error=common").await;
    assert!(page.contains("among the most common"), "{page}");

    // Without --sign-up open (the default is invitations only), nobody signs themselves up.
    let data = TempDir::new();
    let closed = TestServer::start_in(data.path(), &[]).await;
    assert_eq!(
        closed.sign_up("ann", "Ann", "a long enough password").await,
        None
    );
    let (status, _, page) = closed.get("/sign-up").await;
    assert_eq!(status, 403);
    assert!(page.contains("by invitation"), "{page}");
    let data = TempDir::new();
    let closed = TestServer::start_in(data.path(), &["--sign-up", "closed"]).await;
    let (status, _, page) = closed.get("/sign-up").await;
    assert_eq!(status, 403);
    assert!(page.contains("does not take sign-ups"), "{page}");
}

#[tokio::test]
async fn a_new_password_ends_every_other_session_and_the_sessions_page_ends_one() {
    let data = TempDir::new();
    // Each device signs in from an address of its own (every try counts against the account's
    // budget at an address).
    let server = TestServer::start_in(data.path(), &["--trusted-proxy", "127.0.0.1/32"]).await;
    let devices = std::sync::atomic::AtomicU8::new(1);
    let sign_in_as = |password: &'static str| {
        let device = devices.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sign_in_from(&server, format!("198.51.100.{device}"), OWNER, password)
    };
    let sign_in = || sign_in_as(OWNER_PASSWORD);
    let (here, laptop, phone) = (
        sign_in().await.expect("in"),
        sign_in().await.expect("in"),
        sign_in().await.expect("in"),
    );
    // The account page lists them, this device marked.
    let (status, _, page) = server.get_as("/account", &here).await;
    assert_eq!(status, 200);
    // The harness's claim of the setup signed in once more.
    assert_eq!(page.matches("data-testid=\"session\"").count(), 4, "{page}");
    assert_eq!(page.matches("data-this=\"true\"").count(), 1);
    // End the phone's from here.
    let ids: Vec<&str> = page
        .split("name=\"session\" value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|id| *id != "others")
        .collect();
    assert_eq!(ids.len(), 3, "a sign-out button for each other device");
    for id in &ids {
        server
            .post_as(
                "/account/sessions/end",
                Some(&here),
                &form(&[("session", id)]),
            )
            .await;
    }
    assert_eq!(server.who(&phone).await, None);
    assert_eq!(server.who(&laptop).await, None);
    assert!(server.who(&here).await.is_some());

    // A session of someone else's is not theirs to end: a guest naming the owner's laptop's.
    let laptop = sign_in().await.expect("in");
    let (_, _, page) = server.get_as("/account", &here).await;
    let laptop_id = page
        .split("name=\"session\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the laptop's sign-out button");
    let guest = server.session("Guest").await;
    server
        .post_as(
            "/account/sessions/end",
            Some(&guest),
            &form(&[("session", laptop_id)]),
        )
        .await;
    assert!(server.who(&laptop).await.is_some(), "still signed in");
    let (_, _, guest_page) = server.get_as("/account", &guest).await;
    assert!(guest_page.contains("a guest"), "{guest_page}");
    assert!(
        !guest_page.contains("password-form"),
        "a guest has no password"
    );

    // A new password: the current one is needed, the new one must be new enough, then every
    // other device is signed out; the old password no longer works, the new one does.
    let change = |current: &str, new: &str, again: &str| {
        form(&[("current", current), ("password", new), ("again", again)])
    };
    let (_, to, _) = server
        .post_as(
            "/account/password",
            Some(&here),
            &change("wrong", "a new long password", "a new long password"),
        )
        .await;
    assert_eq!(to, "/account?error=current");
    let (_, to, _) = server
        .post_as(
            "/account/password",
            Some(&here),
            &change(OWNER_PASSWORD, "a new long password", "a different one"),
        )
        .await;
    assert_eq!(to, "/account?error=mismatch");
    let (_, to, _) = server
        .post_as(
            "/account/password",
            Some(&here),
            &change(OWNER_PASSWORD, "12345678", "12345678"),
        )
        .await;
    assert_eq!(to, "/account?error=common");
    assert!(server.who(&laptop).await.is_some(), "nothing changed yet");
    let (_, to, _) = server
        .post_as(
            "/account/password",
            Some(&here),
            &change(OWNER_PASSWORD, "a new long password", "a new long password"),
        )
        .await;
    assert_eq!(to, "/account?done=password");
    assert_eq!(
        server.who(&laptop).await,
        None,
        "the other device is signed out"
    );
    assert!(server.who(&here).await.is_some(), "this one is not");
    assert!(server.who(&guest).await.is_some(), "nor anyone else");
    assert_eq!(sign_in_as(OWNER_PASSWORD).await, None);
    assert!(sign_in_as("a new long password").await.is_some());
}

#[tokio::test]
async fn wrong_passwords_slow_an_address_down_on_that_account_but_not_the_owner_elsewhere() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--trusted-proxy", "127.0.0.1/32"]).await;
    let from = |address: &str, password: &str| {
        let body = form(&[("handle", OWNER), ("password", password)]);
        let headers = format!("X-Forwarded-For: {address}\r\n");
        let server = &server;
        async move {
            let (status, head, _) = server.post_form_with("/sign-in", &headers, &body).await;
            assert_eq!(status, 303);
            header(&head, "location").unwrap_or_default().to_owned()
        }
    };
    // Five wrong tries from one address...
    for _ in 0..server::accounts::ACCOUNT_BURST {
        assert!(
            from("203.0.113.7", "a guess")
                .await
                .starts_with("/sign-in?error=wrong")
        );
    }
    // ...and the sixth is not even tried, the right password included.
    let slowed = from("203.0.113.7", OWNER_PASSWORD).await;
    assert!(slowed.starts_with("/sign-in?error=slow&wait="), "{slowed}");
    let (_, _, page) = server.get(&slowed).await;
    assert!(page.contains("Too many tries from here"), "{page}");
    // The owner, at home, is not locked out by it.
    assert_eq!(from("198.51.100.20", OWNER_PASSWORD).await, "/");
}

/// The owner's `/account` page makes an invitation for `uses` people: its link's path.
async fn invitation(server: &TestServer, owner: &str, uses: &str) -> String {
    let body = form(&[("uses", uses), ("days", "7")]);
    let (status, _, page) = server
        .post_form_with(
            "/account/invitations",
            &format!("Cookie: {owner}\r\n"),
            &body,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let link = page
        .split("data-testid=\"invitation-link\"")
        .next()
        .and_then(|before| before.rsplit("value=\"").next())
        .and_then(|rest| rest.split('"').next())
        .expect("the link on the page");
    let path = link.split_once("/invite/").expect("an invitation link").1;
    format!("/invite/{path}")
}

async fn invitations_let_in_as_many_as_they_say(flags: &[&str]) {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), flags).await;
    let owner = server.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    // A guest may not make one.
    let guest = server.session("Guest").await;
    let (status, _, _) = server
        .post_form_with(
            "/account/invitations",
            &format!("Cookie: {guest}\r\n"),
            "uses=1&days=1",
        )
        .await;
    assert_eq!(status, 403);

    let link = invitation(&server, &owner, "2").await;
    let (status, _, page) = server.get(&link).await;
    assert_eq!(status, 200);
    assert!(page.contains("You are invited"), "{page}");
    let join = |link: &str, handle: &str| {
        let body = form(&[
            ("handle", handle),
            ("name", handle),
            ("password", "a long enough password"),
        ]);
        let (server, link) = (&server, link.to_owned());
        async move { server.post_as(&link, None, &body).await }
    };
    // Two at once, and a third at the same time: two get in.
    let (one, two, three) =
        tokio::join!(join(&link, "dee"), join(&link, "eli"), join(&link, "fay"));
    let joined: Vec<String> = [one, two, three]
        .into_iter()
        .filter_map(|(_, _, c)| c)
        .collect();
    assert_eq!(joined.len(), 2, "a link for two lets two in");
    for cookie in &joined {
        assert!(server.who(cookie).await.is_some());
    }
    // Used up: the page says so, and a post makes nobody.
    let (status, _, page) = server.get(&link).await;
    assert_eq!(status, 404);
    assert!(page.contains("not valid any more"), "{page}");
    assert_eq!(join(&link, "gus").await.2, None);

    // A handle taken uses nothing up; a revoked link lets nobody in.
    let link = invitation(&server, &owner, "1").await;
    let (_, to, cookie) = join(&link, "dee").await;
    assert_eq!(cookie, None, "dee is taken");
    assert!(to.contains("error=taken"), "{to}");
    let (_, _, page) = server.get_as("/account", &owner).await;
    assert_eq!(
        page.matches("data-testid=\"invitation\"").count(),
        1,
        "still live"
    );
    let id = page
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("its revoke button");
    let (_, to, _) = server
        .post_as(
            "/account/invitations/revoke",
            Some(&owner),
            &form(&[("id", id)]),
        )
        .await;
    assert_eq!(to, "/account?done=revoked");
    let (_, to, cookie) = join(&link, "hal").await;
    assert_eq!(
        (cookie, to),
        (None, link.clone()),
        "revoked: back to the page that says so"
    );
    // A made-up link is no invitation.
    let (status, ..) = server.get(&format!("/invite/{}", "ab".repeat(32))).await;
    assert_eq!(status, 404);
    let (status, ..) = server.get("/invite/not-a-token").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_invitation_lets_in_as_many_people_as_it_says_once_each_and_no_more() {
    invitations_let_in_as_many_as_they_say(&[]).await;
}

#[tokio::test]
async fn on_redis_an_invitation_lets_in_as_many_people_as_it_says_once_each_and_no_more() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    invitations_let_in_as_many_as_they_say(&["--redis", url.as_str(), "--session-secret", SECRET])
        .await;
}

/// Signs `cookie` out with the form, as the page does.
async fn sign_out(server: &TestServer, cookie: &str) {
    let (status, _, _) = server.post_as("/session/end", Some(cookie), "").await;
    assert_eq!(status, 303);
}

async fn the_close_code(client: &mut Client) -> u16 {
    let frame = tokio::time::timeout(common::PATIENCE, client.close_frame())
        .await
        .expect("closed in time")
        .expect("a close frame");
    u16::from(frame.code)
}

#[tokio::test]
async fn the_sockets_a_session_let_in_close_when_it_ends_here_or_on_another_node() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let flags = ["--redis", url.as_str(), "--session-secret", SECRET];
    let (a_data, b_data) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_in(a_data.path(), &flags).await;
    let b = TestServer::start_in(b_data.path(), &flags).await;
    // One person on two devices: the laptop's sockets on both nodes, the phone's on B.
    let laptop = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("in");
    let phone = b.sign_in(OWNER, OWNER_PASSWORD).await.expect("in");
    let mut laptop_a = Client::connect(a.addr, &laptop).await;
    let mut laptop_b = Client::connect(b.addr, &laptop).await;
    let mut phone_b = Client::connect(b.addr, &phone).await;

    // Signed out on the laptop through node A: its sockets close on A and on B, typed 4001.
    sign_out(&a, &laptop).await;
    assert_eq!(the_close_code(&mut laptop_a).await, 4001);
    assert_eq!(the_close_code(&mut laptop_b).await, 4001);
    // The phone's session is another: its socket stays and works.
    phone_b.post("p1", "still here").await;

    // A new password set on A ends the phone's session: its socket on B closes.
    let laptop = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("in again");
    let body = form(&[
        ("current", OWNER_PASSWORD),
        ("password", "a brand new password"),
        ("again", "a brand new password"),
    ]);
    let (_, to, _) = a.post_as("/account/password", Some(&laptop), &body).await;
    assert_eq!(to, "/account?done=password");
    assert_eq!(the_close_code(&mut phone_b).await, 4001);
}

/// On `a` and `b` (one node twice, or two nodes of a cluster): the admin on A deactivates Bea
/// while her socket is open on B.
async fn deactivation(a: &TestServer, b: &TestServer) {
    let bea = a
        .sign_up("bea", "Bea", "a long enough password")
        .await
        .expect("signed up");
    let mut socket = Client::connect(b.addr, &bea).await;
    let me = a.who(&bea).await.expect("signed in");
    let id = me["id"].as_str().expect("an id").to_owned();
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");

    // Bea may not see the page, nor deactivate anyone.
    let (status, ..) = a.get_as("/admin/people", &bea).await;
    assert_eq!(status, 403);
    let owner_id = a.who(&owner).await.expect("owner")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let body = form(&[("account", &owner_id), ("active", "0")]);
    let (status, ..) = a.post_as("/admin/people/active", Some(&bea), &body).await;
    assert_eq!(status, 403);
    // Nor may the owner deactivate themselves.
    let (status, ..) = a.post_as("/admin/people/active", Some(&owner), &body).await;
    assert_eq!(status, 403);

    let (status, _, page) = a.get_as("/admin/people", &owner).await;
    assert_eq!(status, 200);
    assert!(page.contains("@bea"), "{page}");
    let body = form(&[("account", &id), ("active", "0")]);
    let (_, to, _) = a.post_as("/admin/people/active", Some(&owner), &body).await;
    assert_eq!(to, "/admin/people");
    // Her socket on the other node closes at once; her cookie is nobody anywhere.
    assert_eq!(the_close_code(&mut socket).await, 4001);
    assert_eq!(b.who(&bea).await, None);
    assert_eq!(a.who(&bea).await, None);
    // Signing in again is refused, saying why (she knows her password).
    let body = form(&[("handle", "bea"), ("password", "a long enough password")]);
    let (_, to, cookie) = a.post_as("/sign-in", None, &body).await;
    assert_eq!(cookie, None);
    assert!(to.starts_with("/sign-in?error=deactivated"), "{to}");
    let (_, _, page) = a.get_as("/admin/people", &owner).await;
    assert!(page.contains("(deactivated)"), "{page}");

    // Reactivated, she signs in again.
    let body = form(&[("account", &id), ("active", "1")]);
    a.post_as("/admin/people/active", Some(&owner), &body).await;
    assert!(b.sign_in("bea", "a long enough password").await.is_some());
}

#[tokio::test]
async fn an_admin_deactivates_an_account_its_socket_closes_and_it_cannot_sign_in_until_reactivated()
{
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--sign-up", "open"]).await;
    deactivation(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_deactivation_on_one_node_closes_the_socket_on_another() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let flags = [
        "--redis",
        url.as_str(),
        "--session-secret",
        SECRET,
        "--sign-up",
        "open",
    ];
    let (a_data, b_data) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_in(a_data.path(), &flags).await;
    let b = TestServer::start_in(b_data.path(), &flags).await;
    deactivation(&a, &b).await;
}

/// An admin's one-time link lets someone who forgot their password choose a new one: once, not by
/// anyone else, and every device of theirs is signed out (on every node).
async fn password_reset(a: &TestServer, b: &TestServer) {
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let cy = a
        .sign_up("cy", "Cy", "a long enough password")
        .await
        .expect("cy");
    let dee = a
        .sign_up("dee", "Dee", "another long password")
        .await
        .expect("dee");
    let cy_id = a.who(&cy).await.expect("cy")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut socket = Client::connect(b.addr, &cy).await;
    let body = form(&[("account", &cy_id)]);
    // A member makes none; the admin does, and sees it once.
    assert_eq!(
        a.post_as("/admin/people/reset", Some(&dee), &body).await.0,
        403
    );
    let (status, _, page) = {
        let headers = format!("Cookie: {owner}\r\n");
        a.post_form_with("/admin/people/reset", &headers, &body)
            .await
    };
    assert_eq!(status, 200);
    let link = page
        .split("value=\"")
        .find_map(|rest| rest.split('"').next().filter(|v| v.contains("/reset/")))
        .expect("the link on the page")
        .to_owned();
    let path = link[link.find("/reset/").expect("a path")..].to_owned();
    let (status, _, page) = b.get(&path).await;
    assert_eq!(status, 200);
    assert!(page.contains("A new password for Cy (@cy)"), "{page}");
    // The rules of any new password hold.
    let weak = form(&[("password", "password1"), ("again", "password1")]);
    let (_, to, cookie) = b.post_as(&path, None, &weak).await;
    assert!(to.ends_with("error=common") && cookie.is_none(), "{to}");
    // Set: this browser is signed in as Cy; her other device is signed out at once.
    let new = form(&[
        ("password", "a brand new password"),
        ("again", "a brand new password"),
    ]);
    let (status, to, cookie) = b.post_as(&path, None, &new).await;
    assert_eq!((status, to.as_str()), (303, "/"));
    let fresh = cookie.expect("signed in");
    assert_eq!(b.who(&fresh).await.expect("cy")["id"], cy_id.as_str());
    assert_eq!(the_close_code(&mut socket).await, 4001);
    assert_eq!(a.who(&cy).await, None);
    assert!(a.sign_in("cy", "a long enough password").await.is_none());
    assert!(a.sign_in("cy", "a brand new password").await.is_some());
    // Used once: the link is dead, on either node.
    assert_eq!(a.get(&path).await.0, 404);
    let (status, _, cookie) = a.post_as(&path, None, &new).await;
    assert_eq!((status, cookie), (404, None));
    let (_, _, audit) = a.get_as("/admin/audit", &owner).await;
    assert!(
        audit.contains("made a new password link for Cy (@cy)"),
        "{audit}"
    );
}

#[tokio::test]
async fn an_admins_one_time_link_lets_someone_choose_a_new_password_once() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--sign-up", "open"]).await;
    password_reset(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_new_password_link_made_on_one_node_works_once_on_another() {
    let nodes = common::TwoNodes::start(&[]).await;
    password_reset(&nodes.a, &nodes.b).await;
}
