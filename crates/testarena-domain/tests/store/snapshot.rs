//! `store::snapshot`: one moment of the database for all its reads, on
//! both backends, and no second transaction when it runs inside one.

use testarena_domain::store;

use super::{add, test_db};

#[test]
fn a_snapshot_does_not_see_what_commits_after_its_first_read() {
    let db = test_db();
    add(&db, "q1", 2);
    let mut reader = db.pool.get().unwrap();
    let (before, after) = store::snapshot(&mut reader, |conn| {
        let before = store::queue_detail(conn, "q1")?.map(|d| d.tasks.len());
        // Another connection deletes the queue meanwhile, and commits.
        let mut other = db.pool.get().unwrap();
        store::delete_queue(&mut other, "q1", super::ADMIN).unwrap();
        let after = store::queue_detail(conn, "q1")?.map(|d| d.tasks.len());
        Ok((before, after))
    })
    .unwrap();
    assert_eq!((before, after), (Some(2), Some(2)), "one moment throughout");
    assert!(
        store::queue_detail(&mut reader, "q1").unwrap().is_none(),
        "a new snapshot sees the deletion"
    );
}

#[test]
fn a_snapshot_inside_a_transaction_runs_in_it() {
    let db = test_db();
    add(&db, "q1", 1);
    let mut conn = db.pool.get().unwrap();
    let seen = testarena_domain::db::write(&mut conn, |conn| {
        // After a query in this transaction: a new snapshot could not start
        // here (PostgreSQL refuses to set an isolation level once a query
        // ran), and a savepoint would only cost round trips.
        let row = store::get_queue(conn, "q1")?;
        let detail = store::queue_detail(conn, "q1")?;
        Ok::<_, store::StoreError>((row.map(|q| q.id), detail.map(|d| d.tasks.len())))
    })
    .unwrap();
    assert_eq!(seen, (Some("q1".to_owned()), Some(1)));
}
