/* test_dynsec.c - unit tests of server/dynsec.c: the dynamic-security
 * plugin's commands and answers, and a session without a broker. */
#include "server/dynsec.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define PASSWORD "efm_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"

static const char *command_name(const json_t *commands, size_t i)
{
    return json_string_value(json_object_get(json_array_get(commands, i), "command"));
}

/* True when acls holds {acltype, topic, allow: true}. */
static bool has_acl(const json_t *acls, const char *acltype, const char *topic)
{
    size_t i;
    json_t *acl;
    json_array_foreach(acls, i, acl)
    {
        if (strcmp(json_string_value(json_object_get(acl, "acltype")), acltype) == 0 &&
            strcmp(json_string_value(json_object_get(acl, "topic")), topic) == 0 &&
            json_is_true(json_object_get(acl, "allow")))
            return true;
    }
    return false;
}

static void test_create_makes_the_role_then_the_client(void **state)
{
    json_t *commands = json_array();
    assert_int_equal(dynsec_commands_device_create(commands, "dev-1", PASSWORD), 0);
    assert_int_equal(json_array_size(commands), 2);
    assert_string_equal(command_name(commands, 0), "createRole");
    assert_string_equal(command_name(commands, 1), "createClient");

    json_t *role = json_array_get(commands, 0);
    assert_string_equal(json_string_value(json_object_get(role, "rolename")),
                        "edgefleet-device-dev-1");

    json_t *client = json_array_get(commands, 1);
    assert_string_equal(json_string_value(json_object_get(client, "username")), "dev-1");
    assert_string_equal(json_string_value(json_object_get(client, "password")), PASSWORD);
    json_t *roles = json_object_get(client, "roles");
    assert_int_equal(json_array_size(roles), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(roles, 0), "rolename")),
                        "edgefleet-device-dev-1");
    /* No client id is pinned: the agent chooses its own. */
    assert_null(json_object_get(client, "clientid"));
    json_decref(commands);
}

static void test_the_role_allows_only_the_devices_own_topics(void **state)
{
    json_t *commands = json_array();
    assert_int_equal(dynsec_commands_device_create(commands, "dev-1", PASSWORD), 0);
    json_t *acls = json_object_get(json_array_get(commands, 0), "acls");
    assert_int_equal(json_array_size(acls), 7);
    assert_true(has_acl(acls, "subscribeLiteral", "edgefleet/v1/devices/dev-1/desired"));
    assert_true(has_acl(acls, "subscribeLiteral", "edgefleet/v1/devices/dev-1/cmd"));
    assert_true(has_acl(acls, "publishClientReceive", "edgefleet/v1/devices/dev-1/desired"));
    assert_true(has_acl(acls, "publishClientReceive", "edgefleet/v1/devices/dev-1/cmd"));
    assert_true(has_acl(acls, "publishClientSend", "edgefleet/v1/devices/dev-1/reported"));
    assert_true(has_acl(acls, "publishClientSend", "edgefleet/v1/devices/dev-1/telemetry"));
    assert_true(has_acl(acls, "publishClientSend", "edgefleet/v1/devices/dev-1/status"));
    /* Never the right to write desired or cmd, nor a wildcard. */
    assert_false(has_acl(acls, "publishClientSend", "edgefleet/v1/devices/dev-1/desired"));
    size_t i;
    json_t *acl;
    json_array_foreach(acls, i, acl)
    {
        const char *topic = json_string_value(json_object_get(acl, "topic"));
        assert_null(strpbrk(topic, "+#"));
    }
    json_decref(commands);
}

static void test_delete_removes_the_client_then_the_role(void **state)
{
    json_t *commands = json_array();
    assert_int_equal(dynsec_commands_device_delete(commands, "dev-1"), 0);
    assert_int_equal(json_array_size(commands), 2);
    assert_string_equal(command_name(commands, 0), "deleteClient");
    assert_string_equal(json_string_value(json_object_get(json_array_get(commands, 0), "username")),
                        "dev-1");
    assert_string_equal(command_name(commands, 1), "deleteRole");
    assert_string_equal(json_string_value(json_object_get(json_array_get(commands, 1), "rolename")),
                        "edgefleet-device-dev-1");
    json_decref(commands);
}

static void test_ids_that_are_not_device_ids_are_refused(void **state)
{
    static const char *const bad[] = {"", "a/b", "+", "#", "dev+1", "-x", ".x", "a b", "\"quote\""};
    json_t *commands = json_array();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dynsec_commands_device_create(commands, bad[i], PASSWORD), EF_EINVAL);
        assert_int_equal(dynsec_commands_device_delete(commands, bad[i]), EF_EINVAL);
    }
    assert_int_equal(json_array_size(commands), 0);
    json_decref(commands);
}

static void test_request_text_carries_the_correlation_on_every_command(void **state)
{
    json_t *commands = json_array(), *doc, *c;
    size_t i;
    assert_int_equal(dynsec_commands_device_delete(commands, "dev-1"), 0);
    assert_int_equal(dynsec_commands_device_create(commands, "dev-1", PASSWORD), 0);
    char *text = dynsec_request_text(commands, "edgefleet-7");
    assert_non_null(text);
    doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 1);
    json_t *sent = json_object_get(doc, "commands");
    assert_int_equal(json_array_size(sent), 4);
    json_array_foreach(sent, i, c)
    {
        assert_string_equal(json_string_value(json_object_get(c, "correlationData")),
                            "edgefleet-7");
        assert_string_equal(json_string_value(json_object_get(c, "command")),
                            command_name(commands, i));
    }
    /* The caller's commands are left as they were. */
    json_array_foreach(commands, i, c) assert_null(json_object_get(c, "correlationData"));
    json_decref(doc);
    free(text);
    json_decref(commands);
}

static int parse(const char *text, json_t **out)
{
    return dynsec_response_parse(text, strlen(text), out);
}

static void test_answers_are_parsed(void **state)
{
    json_t *r = NULL;
    assert_int_equal(parse("{\"responses\":[{\"command\":\"createRole\",\"correlationData\":\"c\"},"
                           "{\"command\":\"createClient\",\"error\":\"Client already exists\","
                           "\"correlationData\":\"c\"}]}",
                           &r),
                     0);
    assert_int_equal(json_array_size(r), 2);
    json_decref(r);
    /* A listing carries data; an answer to a payload that was not JSON has
     * no correlation. */
    assert_int_equal(
        parse("{\"responses\":[{\"command\":\"listClients\",\"data\":{\"totalCount\":1,"
              "\"clients\":[\"admin\"]},\"correlationData\":\"p\"}]}",
              &r),
        0);
    json_decref(r);
    assert_int_equal(
        parse("{\"responses\":[{\"command\":\"Unknown command\",\"error\":\"Payload not valid "
              "JSON\"}]}",
              &r),
        0);
    json_decref(r);
}

static void test_malformed_answers_are_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"responses\":{}}",
        "{\"responses\":[1]}",
        "{\"responses\":[{}]}",
        "{\"responses\":[{\"command\":7}]}",
        "{\"responses\":[{\"command\":\"x\",\"error\":false}]}",
        "{\"responses\":[{\"command\":\"x\",\"correlationData\":3}]}",
        "{\"responses\":[],\"responses\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = (json_t *)1;
        assert_int_equal(parse(bad[i], &r), EF_EPARSE);
        assert_null(r);
    }
    static char big[DYNSEC_MESSAGE_MAX + 1];
    json_t *r = NULL;
    memset(big, ' ', sizeof(big));
    assert_int_equal(dynsec_response_parse(big, sizeof(big), &r), EF_ETOOBIG);
}

/* Checks answers (JSON text) to the commands that create dev-1 after
 * deleting what was left of it. */
static int check(const char *answers_text, char *msg, size_t size)
{
    json_t *commands = json_array(), *answers = NULL;
    assert_int_equal(dynsec_commands_device_delete(commands, "dev-1"), 0);
    assert_int_equal(dynsec_commands_device_create(commands, "dev-1", PASSWORD), 0);
    assert_int_equal(parse(answers_text, &answers), 0);
    int rc = dynsec_answers_check(commands, answers, msg, size);
    json_decref(answers);
    json_decref(commands);
    return rc;
}

static void test_answers_are_checked_command_by_command(void **state)
{
    char msg[128];
    assert_int_equal(check("{\"responses\":[{\"command\":\"deleteClient\"},"
                           "{\"command\":\"deleteRole\"},{\"command\":\"createRole\"},"
                           "{\"command\":\"createClient\"}]}",
                           msg, sizeof(msg)),
                     0);
    /* Nothing was left to delete: fine. */
    assert_int_equal(check("{\"responses\":[{\"command\":\"deleteClient\",\"error\":\"Client not "
                           "found\"},{\"command\":\"deleteRole\",\"error\":\"Role not found\"},"
                           "{\"command\":\"createRole\"},{\"command\":\"createClient\"}]}",
                           msg, sizeof(msg)),
                     0);
    /* A create that fails is a refusal, named in msg. */
    assert_int_equal(check("{\"responses\":[{\"command\":\"deleteClient\"},"
                           "{\"command\":\"deleteRole\"},{\"command\":\"createRole\"},"
                           "{\"command\":\"createClient\",\"error\":\"Role not found\"}]}",
                           msg, sizeof(msg)),
                     EF_EPERM);
    assert_string_equal(msg, "createClient: Role not found");
    assert_int_equal(check("{\"responses\":[{\"command\":\"deleteClient\",\"error\":\"Permission "
                           "denied\"},{\"command\":\"deleteRole\"},{\"command\":\"createRole\"},"
                           "{\"command\":\"createClient\"}]}",
                           msg, sizeof(msg)),
                     EF_EPERM);
    assert_string_equal(msg, "deleteClient: Permission denied");
}

static void test_answers_that_do_not_match_the_commands_are_refused(void **state)
{
    char msg[128];
    assert_int_equal(check("{\"responses\":[{\"command\":\"deleteClient\"}]}", msg, sizeof(msg)),
                     EF_EPARSE);
    assert_int_equal(check("{\"responses\":[{\"command\":\"deleteRole\"},"
                           "{\"command\":\"deleteClient\"},{\"command\":\"createRole\"},"
                           "{\"command\":\"createClient\"}]}",
                           msg, sizeof(msg)),
                     EF_EPARSE);
}

static void test_without_a_broker_nothing_is_managed(void **state)
{
    char password[DYNSEC_PASSWORD_SIZE] = "x";
    assert_int_equal(dynsec_state_get(NULL), DYNSEC_UNAVAILABLE);
    assert_int_equal(dynsec_state_wait(NULL), DYNSEC_UNAVAILABLE);
    dynsec_identity_lock(NULL);
    dynsec_identity_unlock(NULL);
    dynsec_connected(NULL);
    dynsec_disconnected(NULL);
    dynsec_response(NULL, "{}", 2);
    dynsec_free(NULL);

    /* A session whose client never connected: calls fail at once and leave
     * no password behind. */
    struct dynsec *ds = NULL;
    assert_int_equal(dynsec_new(NULL, &ds), 0);
    assert_int_equal(dynsec_state_get(ds), DYNSEC_UNKNOWN);
    assert_int_equal(dynsec_device_create(ds, "dev-1", password), EF_ENET);
    assert_string_equal(password, "");
    assert_int_equal(dynsec_device_delete(ds, "dev-1"), EF_ENET);
    /* An answer nobody waits for is dropped. */
    static const char late[] = "{\"responses\":[{\"command\":\"deleteClient\","
                               "\"correlationData\":\"edgefleet-1\"}]}";
    dynsec_response(ds, late, sizeof(late) - 1);
    dynsec_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_makes_the_role_then_the_client),
        cmocka_unit_test(test_the_role_allows_only_the_devices_own_topics),
        cmocka_unit_test(test_delete_removes_the_client_then_the_role),
        cmocka_unit_test(test_ids_that_are_not_device_ids_are_refused),
        cmocka_unit_test(test_request_text_carries_the_correlation_on_every_command),
        cmocka_unit_test(test_answers_are_parsed),
        cmocka_unit_test(test_malformed_answers_are_refused),
        cmocka_unit_test(test_answers_are_checked_command_by_command),
        cmocka_unit_test(test_answers_that_do_not_match_the_commands_are_refused),
        cmocka_unit_test(test_without_a_broker_nothing_is_managed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
