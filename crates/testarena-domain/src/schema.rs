// @generated automatically by Diesel CLI.

diesel::table! {
    api_tokens (id) {
        id -> Integer,
        user_id -> Integer,
        name -> Text,
        token_hash -> Text,
        prefix -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    attempts (id) {
        id -> Integer,
        queue_id -> Text,
        attempt -> Integer,
        worker -> Nullable<Text>,
        ran_on -> Nullable<Text>,
        started_at -> Nullable<Timestamp>,
        finished_at -> Timestamp,
        status -> Text,
        reason -> Nullable<Text>,
        results -> Text,
    }
}

diesel::table! {
    boards (id) {
        id -> Text,
        worker_id -> Text,
        target -> Text,
        tags -> Text,
        serial -> Text,
        baud -> Integer,
        status -> Text,
        health -> Text,
        queue_id -> Nullable<Text>,
        leased_at -> Nullable<Timestamp>,
        heartbeat_at -> Timestamp,
        last_health_at -> Nullable<Timestamp>,
        last_health_queue -> Nullable<Text>,
        health_queue -> Nullable<Text>,
        health_repo -> Nullable<Text>,
        health_branch -> Nullable<Text>,
        health_scenario -> Nullable<Text>,
        health_every_h -> Nullable<Integer>,
        note -> Text,
        maintenance -> Bool,
        flashes -> Integer,
        faults -> Integer,
        registered_at -> Timestamp,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Integer,
        kind -> Text,
        event -> Text,
        queue_id -> Nullable<Text>,
        hook_id -> Nullable<Integer>,
        forge -> Nullable<Text>,
        auth_env -> Nullable<Text>,
        context -> Nullable<Text>,
        target_url -> Text,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        last_code -> Nullable<Integer>,
        last_answer -> Nullable<Text>,
        last_error -> Nullable<Text>,
        next_try_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    delivery_events (id) {
        id -> Integer,
        event -> Text,
        subject -> Text,
        status -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    hook_deliveries (id) {
        id -> Integer,
        repo -> Text,
        delivery_id -> Text,
        forge -> Text,
        event -> Text,
        branch -> Nullable<Text>,
        commit_sha -> Nullable<Text>,
        pusher -> Nullable<Text>,
        queues -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        received_at -> Timestamp,
    }
}

diesel::table! {
    log_chunks (queue_id, path, start) {
        queue_id -> Text,
        path -> Text,
        start -> BigInt,
        len -> BigInt,
        data -> Binary,
    }
}

diesel::table! {
    queues (seq) {
        seq -> Integer,
        id -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        repo -> Text,
        branch -> Text,
        commit_sha -> Nullable<Text>,
        target -> Text,
        owner -> Text,
        priority -> Integer,
        timeout_s -> Nullable<Integer>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        worker_id -> Nullable<Text>,
        abort_reason -> Nullable<Text>,
        pgid -> Nullable<Integer>,
        board -> Nullable<Text>,
        board_tags -> Nullable<Text>,
        ran_on -> Nullable<Text>,
        attempt -> Integer,
        no_cache -> Bool,
        triggered_by -> Nullable<Text>,
    }
}

diesel::table! {
    tasks (id) {
        id -> Text,
        queue_id -> Text,
        position -> Integer,
        scenario -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        passed -> Integer,
        failed -> Integer,
        skipped -> Integer,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        only -> Nullable<Text>,
    }
}

diesel::table! {
    test_cases (id) {
        id -> Integer,
        task_id -> Text,
        name -> Text,
        status -> Text,
        duration_ms -> Nullable<Integer>,
        message -> Nullable<Text>,
        repo -> Nullable<Text>,
        scenario -> Nullable<Text>,
        branch -> Nullable<Text>,
        target -> Nullable<Text>,
        commit_sha -> Nullable<Text>,
        ran_on -> Nullable<Text>,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    test_days (repo, day, scenario, name, branch, target) {
        repo -> Text,
        day -> Text,
        scenario -> Text,
        name -> Text,
        branch -> Text,
        target -> Text,
        runs -> Integer,
        passed -> Integer,
        failed -> Integer,
    }
}

diesel::table! {
    test_series (repo, scenario, name, branch, target) {
        repo -> Text,
        scenario -> Text,
        name -> Text,
        branch -> Text,
        target -> Text,
        verdicts -> Text,
        durations -> Text,
        last_id -> Integer,
        last_at -> Timestamp,
        last_status -> Text,
        last_fail_id -> Nullable<Integer>,
        mixed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    users (id) {
        id -> Integer,
        username -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        disabled -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    workers (id) {
        id -> Text,
        slots -> Integer,
        version -> Text,
        pid -> Integer,
        started_at -> Timestamp,
        last_seen -> Timestamp,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(deliveries -> hook_deliveries (hook_id));
diesel::joinable!(test_cases -> tasks (task_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_tokens,
    attempts,
    boards,
    deliveries,
    delivery_events,
    hook_deliveries,
    log_chunks,
    queues,
    tasks,
    test_cases,
    test_days,
    test_series,
    users,
    workers,
);
