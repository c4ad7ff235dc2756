/* Argon2id with libsodium at given parameters, for comparison with custos's Rust argon2 crate.
 *
 *   sodium_argon2 MEMORY_KIB ITERATIONS [RUNS]
 *
 * Prints one line: "<best seconds> <median seconds>" over RUNS runs (default 3) of
 * crypto_pwhash(ALG_ARGON2ID13). libsodium only computes p = 1 (one lane). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MEMORY_KIB ITERATIONS [RUNS]\n", argv[0]);
        return 2;
    }
    unsigned long long m_kib = strtoull(argv[1], NULL, 10);
    unsigned long long t = strtoull(argv[2], NULL, 10);
    int runs = argc == 4 ? atoi(argv[3]) : 3;
    if (m_kib < 8 || t < 1 || runs < 1 || runs > 100) {
        fprintf(stderr, "bad parameters\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    const char *pw = "custos benchmark passphrase";
    unsigned char salt[crypto_pwhash_SALTBYTES];
    memset(salt, 0x5a, sizeof salt);
    unsigned char out[32];
    double *times = calloc((size_t)runs, sizeof *times);
    if (!times) return 1;
    for (int i = 0; i < runs; i++) {
        double t0 = now();
        if (crypto_pwhash(out, sizeof out, pw, strlen(pw), salt, t, (size_t)m_kib * 1024,
                          crypto_pwhash_ALG_ARGON2ID13) != 0) {
            fprintf(stderr, "crypto_pwhash failed (out of memory or parameters out of range)\n");
            return 1;
        }
        times[i] = now() - t0;
    }
    qsort(times, (size_t)runs, sizeof *times, cmp);
    printf("%.6f %.6f\n", times[0], times[runs / 2]);
    free(times);
    return 0;
}
