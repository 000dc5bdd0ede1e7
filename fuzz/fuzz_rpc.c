/* fuzz_rpc.c - libFuzzer entry for one RPC handler. The method is fixed at
 * build time (-DOEE_FUZZ_METHOD=/pkg.Service/Method, see fuzz/BUILD), so each
 * RPC has its own binary and corpus. Input: the raw request body. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

#define STR_(x) #x
#define STR(x) STR_(x)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  oee_fuzz_rpc(STR(OEE_FUZZ_METHOD), data, size);
  return 0;
}
