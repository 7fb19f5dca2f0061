/* test_assignment.c - signed assignments: envelope, signature, payload rules, slots. */
#include "common/assignment.h"
#include "common/crypto.h"
#include "common/ef_error.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SHA_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ISSUED_MS INT64_C(1795341600123) /* 2026-11-22T10:00:00.123Z */

/* Per-test state: the server's key pair and an unrelated one. */
struct fixture {
    struct ef_keypair server;
    struct ef_keypair other;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || ef_crypto_init() != 0) {
        free(f);
        return -1;
    }
    ef_keypair_generate(&f->server);
    ef_keypair_generate(&f->other);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* dev-01, seq 7, production classifier v3 from rollout r-42, and, when
 * with_shadow, a shadow classifier v4 assigned directly (no rollout). */
static struct ef_assignment *sample(bool with_shadow)
{
    struct ef_assignment *a = calloc(1, sizeof(*a));
    assert_non_null(a);
    snprintf(a->device_id, sizeof(a->device_id), "dev-01");
    a->seq = 7;
    a->issued_at_ms = ISSUED_MS;
    a->slots[EF_SLOT_PRODUCTION] =
        ef_slot_new("classifier", 3, "/api/v1/models/classifier/versions/3/manifest",
                    "/api/v1/models/classifier/versions/3/manifest.sig",
                    "/api/v1/artifacts/" SHA_ABC, SHA_ABC, 1234, "r-42");
    assert_non_null(a->slots[EF_SLOT_PRODUCTION]);
    if (with_shadow) {
        a->slots[EF_SLOT_SHADOW] =
            ef_slot_new("classifier", 4, "https://models.example/classifier/4/manifest.json",
                        "https://models.example/classifier/4/manifest.sig",
                        "https://models.example/classifier/4/model.net", SHA_EMPTY, 99, NULL);
        assert_non_null(a->slots[EF_SLOT_SHADOW]);
    }
    return a;
}

/* An envelope around payload bytes, signed with sk: how a tampered or
 * hand-written payload gets a valid signature. */
static char *envelope_of(const char *payload, const unsigned char *sk)
{
    char sig[EF_SIG_B64_SIZE];
    ef_sign_b64(sk, payload, strlen(payload), sig);
    char *b64 = ef_b64_encode(payload, strlen(payload));
    assert_non_null(b64);
    json_t *env = json_pack("{s:s, s:s}", "payload", b64, "signature", sig);
    char *text = json_dumps(env, JSON_COMPACT);
    assert_non_null(text);
    json_decref(env);
    free(b64);
    return text;
}

/* The decoded payload of an envelope (malloc'd, NUL-terminated). */
static char *payload_of(const char *envelope)
{
    json_t *env = json_loads(envelope, 0, NULL);
    unsigned char *raw = NULL;
    size_t len = 0;
    assert_non_null(env);
    assert_int_equal(ef_b64_decode(json_string_value(json_object_get(env, "payload")), &raw, &len),
                     0);
    char *text = malloc(len + 1);
    assert_non_null(text);
    memcpy(text, raw, len);
    text[len] = '\0';
    free(raw);
    json_decref(env);
    return text;
}

static int verify(const struct fixture *f, const char *envelope, struct ef_assignment **out,
                  char *msg, size_t msg_size)
{
    return ef_assignment_verify_parse(envelope, strlen(envelope), f->server.pk, out, msg, msg_size);
}

static void assert_slot_equal(const struct ef_slot *got, const struct ef_slot *want)
{
    assert_non_null(got);
    assert_string_equal(got->model, want->model);
    assert_int_equal(got->version, want->version);
    assert_string_equal(got->manifest_url, want->manifest_url);
    assert_string_equal(got->signature_url, want->signature_url);
    assert_string_equal(got->artifact_url, want->artifact_url);
    assert_string_equal(got->sha256, want->sha256);
    assert_int_equal(got->size, want->size);
    if (want->rollout_id)
        assert_string_equal(got->rollout_id, want->rollout_id);
    else
        assert_null(got->rollout_id);
}

static void sign_then_verify_round_trips_every_field(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(true), *back = NULL;
    char msg[200] = "";
    char *env = ef_assignment_sign(a, f->server.sk);
    assert_non_null(env);
    if (verify(f, env, &back, msg, sizeof(msg)) != 0)
        fail_msg("own assignment rejected: %s", msg);
    assert_string_equal(back->device_id, "dev-01");
    assert_int_equal(back->seq, 7);
    assert_int_equal(back->issued_at_ms, ISSUED_MS);
    assert_slot_equal(back->slots[EF_SLOT_PRODUCTION], a->slots[EF_SLOT_PRODUCTION]);
    assert_slot_equal(back->slots[EF_SLOT_SHADOW], a->slots[EF_SLOT_SHADOW]);
    ef_assignment_free(back);
    ef_assignment_free(a);
    free(env);
}

static void production_only_assignment_has_no_shadow(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(false), *back = NULL;
    char *env = ef_assignment_sign(a, f->server.sk);
    assert_int_equal(verify(f, env, &back, NULL, 0), 0);
    assert_non_null(back->slots[EF_SLOT_PRODUCTION]);
    assert_null(back->slots[EF_SLOT_SHADOW]);
    ef_assignment_free(back);
    ef_assignment_free(a);
    free(env);
}

/* A direct assignment (POST /api/v1/assignments) has no rollout: it is
 * written as "rollout_id": null and must be read back. */
static void slot_without_rollout_round_trips(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(false), *back = NULL;
    char msg[200] = "";
    free(a->slots[EF_SLOT_PRODUCTION]->rollout_id);
    a->slots[EF_SLOT_PRODUCTION]->rollout_id = NULL;
    char *env = ef_assignment_sign(a, f->server.sk);
    char *payload = payload_of(env);
    assert_non_null(strstr(payload, "\"rollout_id\":null"));
    if (verify(f, env, &back, msg, sizeof(msg)) != 0)
        fail_msg("direct assignment rejected: %s", msg);
    assert_null(back->slots[EF_SLOT_PRODUCTION]->rollout_id);
    ef_assignment_free(back);
    ef_assignment_free(a);
    free(payload);
    free(env);
}

static void slot_with_rollout_absent_is_accepted(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *back = NULL;
    char *env = envelope_of(
        "{\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":1,"
        "\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
        "\"model\":\"m\",\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":1,"
        "\"version\":1}}}",
        f->server.sk);
    assert_int_equal(verify(f, env, &back, NULL, 0), 0);
    assert_null(back->slots[EF_SLOT_PRODUCTION]->rollout_id);
    assert_int_equal(back->issued_at_ms, ISSUED_MS - 123);
    ef_assignment_free(back);
    free(env);
}

static void wrong_key_is_a_bad_signature(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(true), *back = (struct ef_assignment *)1;
    char msg[200] = "";
    char *env = ef_assignment_sign(a, f->other.sk);
    assert_int_equal(verify(f, env, &back, msg, sizeof(msg)), EF_EBADSIG);
    assert_null(back);
    assert_non_null(strstr(msg, "signature"));
    ef_assignment_free(a);
    free(env);
}

static void tampered_payload_is_a_bad_signature(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(false), *back = NULL;
    char *env = ef_assignment_sign(a, f->server.sk);
    json_t *doc = json_loads(env, 0, NULL);
    char *payload = payload_of(env);
    /* Raise the seq: the replay protection depends on this being refused. */
    char *seq = strstr(payload, "\"seq\":7");
    assert_non_null(seq);
    seq[6] = '9';
    char *b64 = ef_b64_encode(payload, strlen(payload));
    json_object_set_new(doc, "payload", json_string(b64));
    char *forged = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(verify(f, forged, &back, NULL, 0), EF_EBADSIG);
    assert_null(back);
    free(forged);
    free(b64);
    free(payload);
    json_decref(doc);
    ef_assignment_free(a);
    free(env);
}

static void signature_of_another_assignment_is_a_bad_signature(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(false), *back = NULL;
    char *env_a = ef_assignment_sign(a, f->server.sk);
    a->seq = 8;
    char *env_b = ef_assignment_sign(a, f->server.sk);
    json_t *doc_a = json_loads(env_a, 0, NULL), *doc_b = json_loads(env_b, 0, NULL);
    json_object_set(doc_a, "signature", json_object_get(doc_b, "signature"));
    char *mixed = json_dumps(doc_a, JSON_COMPACT);
    assert_int_equal(verify(f, mixed, &back, NULL, 0), EF_EBADSIG);
    free(mixed);
    json_decref(doc_a);
    json_decref(doc_b);
    free(env_a);
    free(env_b);
    ef_assignment_free(a);
}

static void malformed_envelopes_are_parse_errors(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(false);
    char *env = ef_assignment_sign(a, f->server.sk);
    json_t *doc = json_loads(env, 0, NULL);
    const char *payload = json_string_value(json_object_get(doc, "payload"));
    const char *sig = json_string_value(json_object_get(doc, "signature"));
    char *cases[9];
    size_t n = 0;
    json_t *c;
    /* An extra key, even an innocent-looking one. */
    c = json_pack("{s:s, s:s, s:s}", "payload", payload, "signature", sig, "key_id", "k1");
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    c = json_pack("{s:s}", "payload", payload);
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    c = json_pack("{s:s}", "signature", sig);
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    c = json_pack("{s:i, s:s}", "payload", 5, "signature", sig);
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    c = json_pack("{s:s, s:s}", "payload", "not base64 at all!", "signature", sig);
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    c = json_pack("{s:s, s:s}", "payload", payload, "signature", "***");
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    c = json_pack("[s, s]", payload, sig);
    cases[n++] = json_dumps(c, 0);
    json_decref(c);
    cases[n++] = strdup("{\"payload\": \"e30=\", \"payload\": \"e30=\", \"signature\": \"\"}");
    cases[n++] = strdup("{\"payload\": ");
    for (size_t i = 0; i < n; i++) {
        struct ef_assignment *back = (struct ef_assignment *)1;
        char msg[200] = "";
        assert_non_null(cases[i]);
        int rc = verify(f, cases[i], &back, msg, sizeof(msg));
        if (rc != EF_EPARSE)
            fail_msg("envelope %s: got %s, want malformed", cases[i], ef_errname(rc));
        assert_null(back);
        assert_true(strlen(msg) > 0);
        free(cases[i]);
    }
    json_decref(doc);
    free(env);
    ef_assignment_free(a);
}

static void signed_payload_that_is_not_json_is_a_parse_error(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *back = NULL;
    char *env = envelope_of("{\"device_id\": ", f->server.sk);
    assert_int_equal(verify(f, env, &back, NULL, 0), EF_EPARSE);
    assert_null(back);
    free(env);
}

#define SLOT_OK                                                                                    \
    "{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\",\"model\":\"m\",\"rollout_id\":null,"        \
    "\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":1,\"version\":1}"
#define HEAD_OK "\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00.123Z\",\"seq\":7"

/* Payloads signed with the right key whose content breaks a rule. */
static const char *const bad_payloads[] = {
    "{\"device_id\":\"dev/01\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":7,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"+\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":7,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":7,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":7,\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":0,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":-7,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":\"7\","
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00Z\",\"seq\":7.5,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"dev-01\",\"issued_at\":\"yesterday\",\"seq\":7,"
    "\"slots\":{\"production\":" SLOT_OK "}}",
    "{\"device_id\":\"dev-01\",\"seq\":7,\"slots\":{\"production\":" SLOT_OK "}}",
    "{" HEAD_OK "}",
    "{" HEAD_OK ",\"slots\":[]}",
    "{" HEAD_OK ",\"slots\":{\"canary\":" SLOT_OK "}}",
    "{" HEAD_OK ",\"slots\":{\"production\":\"classifier@3\"}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
    "\"model\":\"m\",\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":1}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
    "\"model\":\"m\",\"sha256\":"
    "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\","
    "\"signature_url\":\"/s\",\"size\":1,\"version\":1}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
    "\"model\":\"m\",\"sha256\":\"abc\",\"signature_url\":\"/s\",\"size\":1,\"version\":1}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
    "\"model\":\"Model\",\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":1,"
    "\"version\":1}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
    "\"model\":\"m\",\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":1,"
    "\"version\":0}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"artifact_url\":\"/a\",\"manifest_url\":\"/m\","
    "\"model\":\"m\",\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":0,"
    "\"version\":1}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":{\"manifest_url\":\"/m\",\"model\":\"m\","
    "\"sha256\":\"" SHA_ABC "\",\"signature_url\":\"/s\",\"size\":1,\"version\":1}}}",
    "{" HEAD_OK ",\"slots\":{\"production\":" SLOT_OK ",\"shadow\":{}}}",
    "[1, 2, 3]",
};

static void signed_payload_breaking_a_rule_is_invalid(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(bad_payloads) / sizeof(bad_payloads[0]); i++) {
        struct ef_assignment *back = (struct ef_assignment *)1;
        char msg[200] = "";
        char *env = envelope_of(bad_payloads[i], f->server.sk);
        int rc = verify(f, env, &back, msg, sizeof(msg));
        if (rc != EF_EINVAL)
            fail_msg("payload %s: got %s, want invalid", bad_payloads[i], ef_errname(rc));
        if (strlen(msg) == 0)
            fail_msg("payload %s: no message", bad_payloads[i]);
        assert_null(back);
        free(env);
    }
}

static void hand_written_valid_payload_is_accepted(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *back = NULL;
    char *env = envelope_of("{" HEAD_OK ",\"slots\":{\"production\":" SLOT_OK "}}", f->server.sk);
    assert_int_equal(verify(f, env, &back, NULL, 0), 0);
    assert_string_equal(back->device_id, "dev-01");
    assert_int_equal(back->seq, 7);
    assert_int_equal(back->issued_at_ms, ISSUED_MS);
    assert_string_equal(back->slots[EF_SLOT_PRODUCTION]->model, "m");
    ef_assignment_free(back);
    free(env);
}

static void oversize_envelope_is_too_big(void **state)
{
    struct fixture *f = *state;
    size_t len = EF_ASSIGNMENT_MAX_BYTES * 2 + 1;
    char *big = malloc(len + 1);
    struct ef_assignment *back = NULL;
    assert_non_null(big);
    memset(big, ' ', len);
    big[0] = '{';
    big[len - 1] = '}';
    big[len] = '\0';
    assert_int_equal(ef_assignment_verify_parse(big, len, f->server.pk, &back, NULL, 0),
                     EF_ETOOBIG);
    assert_null(back);
    free(big);
}

static void oversize_signed_payload_is_too_big(void **state)
{
    struct fixture *f = *state;
    size_t len = EF_ASSIGNMENT_MAX_BYTES + 1;
    char *payload = malloc(len + 1);
    struct ef_assignment *back = NULL;
    assert_non_null(payload);
    memset(payload, ' ', len);
    payload[0] = '{';
    payload[len - 1] = '}';
    payload[len] = '\0';
    char *env = envelope_of(payload, f->server.sk);
    assert_true(strlen(env) <= EF_ASSIGNMENT_MAX_BYTES * 2);
    assert_int_equal(verify(f, env, &back, NULL, 0), EF_ETOOBIG);
    assert_null(back);
    free(env);
    free(payload);
}

static void serialize_is_canonical(void **state)
{
    (void)state;
    struct ef_assignment *a = sample(false);
    char *text = ef_assignment_serialize(a);
    assert_string_equal(
        text, "{\"device_id\":\"dev-01\",\"issued_at\":\"2026-11-22T10:00:00.123Z\",\"seq\":7,"
              "\"slots\":{\"production\":{\"artifact_url\":\"/api/v1/artifacts/" SHA_ABC "\","
              "\"manifest_url\":\"/api/v1/models/classifier/versions/3/manifest\","
              "\"model\":\"classifier\",\"rollout_id\":\"r-42\",\"sha256\":\"" SHA_ABC "\","
              "\"signature_url\":\"/api/v1/models/classifier/versions/3/manifest.sig\","
              "\"size\":1234,\"version\":3}}}");
    free(text);
    ef_assignment_free(a);
}

static void envelope_is_payload_and_signature_only(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(true);
    char *env = ef_assignment_sign(a, f->server.sk);
    char *payload = payload_of(env);
    char *serialized = ef_assignment_serialize(a);
    json_t *doc = json_loads(env, 0, NULL);
    assert_int_equal(json_object_size(doc), 2);
    /* The signed bytes are exactly the canonical serialization. */
    assert_string_equal(payload, serialized);
    assert_int_equal(ef_verify_b64(f->server.pk, payload, strlen(payload),
                                   json_string_value(json_object_get(doc, "signature"))),
                     0);
    json_decref(doc);
    free(serialized);
    free(payload);
    free(env);
    ef_assignment_free(a);
}

/* A slot that cannot be encoded must fail the whole assignment: signing it
 * without that slot would tell the device to drop its model. */
static void unencodable_slot_fails_serialization(void **state)
{
    struct fixture *f = *state;
    struct ef_assignment *a = sample(false);
    free(a->slots[EF_SLOT_PRODUCTION]->artifact_url);
    a->slots[EF_SLOT_PRODUCTION]->artifact_url = strdup("/api/v1/artifacts/\xff\xfe");
    char *text = ef_assignment_serialize(a);
    char *env = ef_assignment_sign(a, f->server.sk);
    assert_null(text);
    assert_null(env);
    free(text);
    free(env);
    ef_assignment_free(a);
}

static void slot_kinds_have_names_both_ways(void **state)
{
    (void)state;
    enum ef_slot_kind kind = EF_SLOT_COUNT;
    assert_string_equal(ef_slot_name(EF_SLOT_PRODUCTION), "production");
    assert_string_equal(ef_slot_name(EF_SLOT_SHADOW), "shadow");
    assert_string_equal(ef_slot_name(EF_SLOT_COUNT), "unknown");
    assert_int_equal(ef_slot_kind_parse("production", &kind), 0);
    assert_int_equal(kind, EF_SLOT_PRODUCTION);
    assert_int_equal(ef_slot_kind_parse("shadow", &kind), 0);
    assert_int_equal(kind, EF_SLOT_SHADOW);
    assert_int_equal(ef_slot_kind_parse("canary", &kind), EF_EINVAL);
    assert_int_equal(ef_slot_kind_parse("Production", &kind), EF_EINVAL);
    assert_int_equal(ef_slot_kind_parse(NULL, &kind), EF_EINVAL);
    assert_int_equal(kind, EF_SLOT_SHADOW);
}

static void slot_new_copies_its_strings(void **state)
{
    (void)state;
    char model[] = "classifier", url[] = "/m", rollout[] = "r-1";
    struct ef_slot *s = ef_slot_new(model, 2, url, url, url, SHA_ABC, 10, rollout);
    assert_non_null(s);
    model[0] = 'X';
    url[1] = 'X';
    rollout[0] = 'X';
    assert_string_equal(s->model, "classifier");
    assert_string_equal(s->manifest_url, "/m");
    assert_string_equal(s->artifact_url, "/m");
    assert_string_equal(s->rollout_id, "r-1");
    assert_string_equal(s->sha256, SHA_ABC);
    assert_int_equal(s->version, 2);
    assert_int_equal(s->size, 10);
    ef_slot_free(s);
}

static void free_functions_accept_null(void **state)
{
    (void)state;
    ef_slot_free(NULL);
    ef_assignment_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(sign_then_verify_round_trips_every_field),
        T(production_only_assignment_has_no_shadow),
        T(slot_without_rollout_round_trips),
        T(slot_with_rollout_absent_is_accepted),
        T(wrong_key_is_a_bad_signature),
        T(tampered_payload_is_a_bad_signature),
        T(signature_of_another_assignment_is_a_bad_signature),
        T(malformed_envelopes_are_parse_errors),
        T(signed_payload_that_is_not_json_is_a_parse_error),
        T(signed_payload_breaking_a_rule_is_invalid),
        T(hand_written_valid_payload_is_accepted),
        T(oversize_envelope_is_too_big),
        T(oversize_signed_payload_is_too_big),
        T(serialize_is_canonical),
        T(envelope_is_payload_and_signature_only),
        T(unencodable_slot_fails_serialization),
        T(slot_kinds_have_names_both_ways),
        T(slot_new_copies_its_strings),
        T(free_functions_accept_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
