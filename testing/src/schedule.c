/* Explored schedules on the testing side: the seed a fixture's scheduler
 * draws from (CHANC_SEED, or the runner's current schedule under
 * CHANC_EXPLORE) and the generator itself (splitmix64: a seed names one
 * schedule exactly, on any machine). The framework's side of the hook is
 * chanc/schedule.h. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testing_internal.h"

static bool planned;      /* the runner has set the seed */
static uint64_t current;  /* its schedule's seed (0: FIFO) */
static uint64_t drawn;    /* choices drawn by every fixture so far */

uint64_t chanc__schedule_drawn(void) { return drawn; }

static uint64_t env_number(const char *name, uint64_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || v[0] == '-') {
        fprintf(stderr, "chanc: %s=%s is not a whole number; ignored\n", name, v);
        return dflt;
    }
    return n;
}

void chanc__schedule_plan(uint64_t *first, uint64_t *last) {
    const char *seed = getenv("CHANC_SEED");
    if (seed && *seed) {
        *first = *last = env_number("CHANC_SEED", 0);
        return;
    }
    uint64_t k = env_number("CHANC_EXPLORE", 0);
    *first = k ? 1 : 0;
    *last = k;
}

void chanc__schedule_use(uint64_t seed, bool from_runner) {
    current = seed;
    planned = from_runner;
}

uint64_t chanc__schedule_seed(void) {
    if (planned)
        return current;
    uint64_t first, last;
    chanc__schedule_plan(&first, &last);
    return first; /* outside chanc_run_group_tests: CHANC_SEED, or schedule 1 */
}

static size_t draw(void *ud, size_t n) {
    struct chanc_test_private *p = ud;
    uint64_t z = (p->schedule_rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    p->schedule_draws++;
    drawn++;
    return (size_t)(z % n);
}

void chanc__schedule_fixture(chanc_test_t *t, unsigned index) {
    uint64_t seed = t->priv->opts.seed ? t->priv->opts.seed : chanc__schedule_seed();
    if (!seed || !t->app)
        return;
    /* Two fixtures alive at once (two processes) draw apart. */
    t->priv->schedule_rng = seed * 0xd1342543de82ef95u + index;
    chanc_app_set_scheduler(t->app, &(chanc_scheduler_t){draw, t->priv});
}

int chanc__schedule_replay(char *out, size_t size, const char *test, uint64_t seed) {
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    return snprintf(out, size, "CHANC_SEED=%llu CHANC_TEST=%s %s", (unsigned long long)seed,
                    test, n > 0 ? exe : "<this test program>");
}
