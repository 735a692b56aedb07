/* coverage_summarise DIR: the protocol coverage of a test run. Merges the
 * <program>.coverage.json files the tests wrote to DIR (CHANC_COVERAGE_DIR)
 * and prints, per consumer, covered/declared incoming actions, outgoing
 * messages, error types and close codes, the items no test exercised, and
 * a summary line. scripts/test runs it after the unit suite. Exit 0 (an
 * unexercised item is reported, not a failure), 2 when DIR holds no
 * coverage file. */
#include <stdio.h>

#include <chanc/testing.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    return chanc_coverage_summarise(argv[1], stdout) < 0 ? 2 : 0;
}
