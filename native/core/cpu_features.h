// Run-time instruction-set selection (DESIGN rule 4): cpuid + XCR0, lowered by KST_ISA / Options::isa.
#pragma once

#include <string>

#include "kst.h"

namespace kst {

// min(detectIsa(), parseIsa(requested), parseIsa($KST_ISA) if set). Throws on unknown names.
Isa effectiveIsa(const std::string& requested);

}  // namespace kst
