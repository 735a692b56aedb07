/* framework.log: what the log emitter hands on. Every line is one line of
 * printable text whatever a client put into it (control bytes, C1
 * controls and bytes that are not UTF-8 escaped as \xHH, once, in the
 * emitter), and no line carries a secret: URL passwords, password=
 * values and registered secrets are replaced by ***, in log lines and in
 * chanc_redact's output (what chat-server prints to stderr). */
#include <chanc/testing.h>
#include <stdlib.h>
#include <string.h>

static char lines[8][4096];
static chanc_log_level_t levels[8];
static int nlines;

static void capture(chanc_log_level_t level, const char *line, void *ud) {
    (void)ud;
    if (nlines < 8) {
        levels[nlines] = level;
        snprintf(lines[nlines++], sizeof lines[0], "%s", line);
    }
}

static int setup(void **state) {
    (void)state;
    nlines = 0;
    chanc_log_set_emitter(capture, NULL);
    chanc_log_set_level(CHANC_LOG_DEBUG);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    chanc_log_set_emitter(NULL, NULL);
    chanc_log_set_level(CHANC_LOG_NOTICE);
    chanc_log_clear_secrets();
    return 0;
}

/* The line the emitter got for chanc_log(INFO, "%s", text). */
static const char *logged(const char *text) {
    nlines = 0;
    chanc_log(CHANC_LOG_INFO, "%s", text);
    assert_int_equal(nlines, 1);
    return lines[0];
}

static void test_control_bytes_are_escaped(void **state) {
    (void)state;
    /* the request line of GET /%1b[31mred%1b[0m, as lws decodes it */
    assert_string_equal(logged("GET /\x1b[31mred\x1b[0m 404"), "GET /\\x1b[31mred\\x1b[0m 404");
    assert_string_equal(logged("a\nfake line\r\tb\x7f"), "a\\x0afake line\\x0d\\x09b\\x7f");
    assert_string_equal(logged("back\\slash"), "back\\\\slash"); /* unambiguous */
    /* valid UTF-8 stays; C1 controls (U+009B is CSI) and stray bytes do not */
    assert_string_equal(logged("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_string_equal(logged("csi \xc2\x9b" "31m"), "csi \\xc2\\x9b31m");
    assert_string_equal(logged("raw \x9b" "31m \xff \xc3"), "raw \\x9b31m \\xff \\xc3");
    assert_string_equal(logged("overlong \xc0\xaf"), "overlong \\xc0\\xaf");
    assert_int_equal(levels[0], CHANC_LOG_INFO);
}

static void test_long_lines_are_cut_not_split(void **state) {
    (void)state;
    char big[2000];
    memset(big, '\x1b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *l = logged(big);
    size_t n = strlen(l);
    assert_true(n > 1000 && n < 4096);
    assert_int_equal(n % 4, 0); /* whole \x1b escapes only */
    assert_null(strchr(l, '\x1b'));
}

static void test_url_passwords_are_redacted(void **state) {
    (void)state;
    assert_string_equal(logged("bad Redis URL \"rediss://:hunter22@h:1\": expected redis://…"),
                        "bad Redis URL \"rediss://:***@h:1\": expected redis://…");
    assert_string_equal(logged("db postgresql://chat:s3cr%2Ft@db.internal:5432/chat?sslmode=require"),
                        "db postgresql://chat:***@db.internal:5432/chat?sslmode=require");
    /* a password holding '/' or ':' is still one password */
    assert_string_equal(logged("redis://user:pa/ss:w@h/0 and more"), "redis://user:***@h/0 and more");
    /* no password: left alone */
    assert_string_equal(logged("postgresql://chat@/chat?host=/run/postgresql"),
                        "postgresql://chat@/chat?host=/run/postgresql");
    assert_string_equal(logged("listening on http://127.0.0.1:8000/"),
                        "listening on http://127.0.0.1:8000/");
}

static void test_password_values_are_redacted(void **state) {
    (void)state;
    assert_string_equal(logged("postgresql://chat@h/chat?password=hunter22&sslmode=require"),
                        "postgresql://chat@h/chat?password=***&sslmode=require");
    assert_string_equal(logged("conninfo host=db user=chat password=hunter22 dbname=chat"),
                        "conninfo host=db user=chat password=*** dbname=chat");
    assert_string_equal(logged("host=db PASSWORD='it\\'s a secret' dbname=chat"),
                        "host=db PASSWORD=*** dbname=chat");
    assert_string_equal(logged("GET /login?username=a&password=x"), "GET /login?username=a&password=***");
    assert_string_equal(logged("old_password=x"), "old_password=x"); /* another key */
}

static void test_registered_secrets_are_redacted(void **state) {
    (void)state;
    /* libpq echoes a bad percent-escape of the password on its own */
    assert_int_equal(chanc_log_add_url_secrets("postgresql://chat:pa%zzss@h/x"), 0);
    assert_string_equal(logged("cannot connect to PostgreSQL: invalid percent-encoded token: \"pa%zzss\""),
                        "cannot connect to PostgreSQL: invalid percent-encoded token: \"***\"");
    assert_int_equal(chanc_log_add_url_secrets("redis://:p%40ss%2Fword@h"), 0);
    assert_string_equal(logged("AUTH p@ss/word failed"), "AUTH *** failed"); /* decoded */
    assert_int_equal(chanc_log_add_url_secrets("host=h password='quoted secret'"), 0);
    assert_string_equal(logged("it was quoted secret"), "it was ***");
    assert_int_equal(chanc_log_add_secret("abc"), 0); /* too short to register */
    assert_string_equal(logged("abc"), "abc");

    char out[64];
    assert_int_equal(chanc_redact("x pa%zzss y", out, sizeof out), strlen("x *** y"));
    assert_string_equal(out, "x *** y");
    chanc_redact("chat-server: cannot open postgresq://chat:hunter22@h/x: unable", out, sizeof out);
    assert_string_equal(out, "chat-server: cannot open postgresq://chat:***@h/x: unable");
    chanc_redact("0123456789", out, 5);
    assert_string_equal(out, "0123");
    chanc_log_clear_secrets();
    assert_string_equal(logged("pa%zzss"), "pa%zzss");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_bytes_are_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lines_are_cut_not_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_passwords_are_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_values_are_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered_secrets_are_redacted, setup, teardown),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}
