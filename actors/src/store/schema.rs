// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Text,
        provider -> Text,
        kind -> Text,
        api_key -> Nullable<Text>,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        expires_at -> Nullable<BigInt>,
        tier -> Integer,
        priority -> Integer,
        paused -> Bool,
        auth_failed -> Bool,
        rate_limited_until -> Nullable<BigInt>,
        rate_limit_status -> Nullable<Text>,
        rate_limit_reset -> Nullable<BigInt>,
        rate_limit_remaining -> Nullable<BigInt>,
        utilization_5h -> Nullable<Double>,
        utilization_7d -> Nullable<Double>,
        session_start -> Nullable<BigInt>,
        session_request_count -> BigInt,
        request_count -> BigInt,
        total_requests -> BigInt,
        last_used -> Nullable<BigInt>,
        created_at -> BigInt,
        requires_reauth -> Bool,
        email -> Nullable<Text>,
        organization -> Nullable<Text>,
        base_url -> Nullable<Text>,
        model_map -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        key_hash -> Text,
        created_at -> BigInt,
        last_used -> Nullable<BigInt>,
        request_count -> BigInt,
        enabled -> Bool,
        requests_per_minute -> Nullable<Integer>,
        max_concurrent -> Nullable<Integer>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        timestamp -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Text,
        status_code -> Integer,
    }
}

diesel::table! {
    request_payloads (request_id) {
        request_id -> Text,
        request_headers -> Text,
        request_body -> Nullable<Binary>,
        response_headers -> Text,
        response_body -> Nullable<Binary>,
        truncated -> Bool,
    }
}

diesel::table! {
    requests (id) {
        id -> Text,
        timestamp -> BigInt,
        method -> Text,
        path -> Text,
        account_id -> Nullable<Text>,
        account_name -> Text,
        status_code -> Nullable<Integer>,
        success -> Bool,
        error_message -> Nullable<Text>,
        response_time_ms -> BigInt,
        time_to_first_token_ms -> Nullable<BigInt>,
        failover_attempts -> Integer,
        model -> Nullable<Text>,
        input_tokens -> Nullable<BigInt>,
        output_tokens -> Nullable<BigInt>,
        cache_read_input_tokens -> Nullable<BigInt>,
        cache_creation_input_tokens -> Nullable<BigInt>,
        cost_usd -> Nullable<Double>,
        output_tokens_per_second -> Nullable<Double>,
        stream -> Bool,
        client_ip -> Nullable<Text>,
        requested_model -> Nullable<Text>,
        provider -> Nullable<Text>,
        api_key_name -> Nullable<Text>,
        instance_id -> Nullable<Text>,
    }
}

diesel::joinable!(request_payloads -> requests (request_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    api_keys,
    audit_log,
    request_payloads,
    requests,
);
