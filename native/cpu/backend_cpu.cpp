// The CPU backend's op tables, one per instruction set. This is the only file that lists every op
// (DESIGN rule 2); an op without a variant for an ISA uses the next lower one.
#include "ops.h"
#include "ref.h"

namespace kst {
namespace cpu {

const Ops& opsFor(Isa isa) {
  static const Ops scalar = [] {
    Ops o;
    o.isa = Isa::Scalar;
    o.name = "scalar";
    o.pack = pack_ref;
    o.gemm = gemm_ref;
    o.gelu = gelu_ref;
    o.add_layernorm = add_layernorm_ref;
    o.attention = attention_ref;
    return o;
  }();
  (void)isa;
  return scalar;
}

}  // namespace cpu
}  // namespace kst
