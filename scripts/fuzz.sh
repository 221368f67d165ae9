#!/usr/bin/env bash
# Builds the libFuzzer targets (the packet decoder, the connection state machine) and runs each for a while.
#
#   scripts/fuzz.sh                                    # each target for 60 seconds
#   FUZZ_SECONDS=3600 FUZZ_GROW_CORPUS=1 scripts/fuzz.sh decoder
#
# MQTTWire and PetrelCore are compiled with libFuzzer's coverage and AddressSanitizer, next to the debug build's
# objects of their dependencies (built first with `swift build`). Runs start from the corpus in
# Fuzz/corpus/<target>/; what they find new goes to .build/fuzz/new-<target>/, or with FUZZ_GROW_CORPUS=1 into the
# corpus itself (then shrink it with `-merge=1` before committing, see Fuzz/README.md). An input that crashes is
# written to Fuzz/regressions/<target>/, where the test suite (FuzzRegressionTests) runs it, with the corpus, on
# every `swift test`. Exits non-zero on a crash.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(decoder connection)

swift build --product petrel >&2
bin=$(swift build --show-bin-path)
out=$root/.build/fuzz
mkdir -p "$out"

# The dependencies' objects, from the debug build: those the petrel executable links (a module's build folder
# may still hold objects of an older version of it).
dependencies=(NIOCore NIOConcurrencyHelpers _NIOBase64 _NIODataStructures CNIOLinux CNIOAtomics Atomics _AtomicsShims
    DequeModule InternalCollectionsUtilities ContainersPreview Crypto _CryptoExtras CryptoExtras CCryptoBoringSSL
    CCryptoBoringSSLShims CryptoBoringWrapper CXKCP CXKCPShims SwiftASN1)
objects=()
while IFS= read -r object; do
    object=${object#\'}
    object=${object%\'}
    for module in "${dependencies[@]}"; do
        if [[ $object == */$module.build/* ]]; then
            objects+=("$object")
            break
        fi
    done
done <"$bin/petrel.product/Objects.LinkFileList"
includes=(-I "$bin/Modules")
for module in "${dependencies[@]}"; do
    [[ -f $bin/$module.build/module.modulemap ]] && includes+=(-Xcc "-fmodule-map-file=$bin/$module.build/module.modulemap")
done
while IFS= read -r directory; do includes+=(-Xcc -I -Xcc "$directory"); done < <(
    find .build/checkouts -type d -name include -path '*Sources*' 2>/dev/null)

flags=(-sanitize=fuzzer,address -parse-as-library -Onone -g -swift-version 6 "${includes[@]}")
build_module() { # NAME SOURCES...
    local name=$1
    shift
    swiftc "${flags[@]}" -I "$out" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
        -emit-library -static -o "$out/lib$name.a" "$@"
}
echo "==> building the fuzz targets in $out" >&2
build_module MQTTWire $(find Sources/MQTTWire -name '*.swift')
build_module PetrelCore $(find Sources/PetrelCore -name '*.swift')
build_module PetrelFuzzTargets Fuzz/Targets/FuzzTargets.swift

status=0
for target in "${targets[@]}"; do
    entry=$out/$target-entry.swift
    case $target in
        decoder) call=packetDecoder ;;
        connection) call=connection ;;
        *) echo "unknown fuzz target $target (decoder, connection)" >&2; exit 2 ;;
    esac
    cat >"$entry" <<SWIFT
import PetrelFuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzTargets.$call(start.map { Array(UnsafeBufferPointer(start: \$0, count: count)) } ?? [])
    return 0
}
SWIFT
    # The linker warns about every sanitizer helper it cannot export: keep that out of the way.
    if ! swiftc "${flags[@]}" -I "$out" -o "$out/fuzz-$target" "$entry" "$out/libPetrelFuzzTargets.a" \
        "$out/libPetrelCore.a" "$out/libMQTTWire.a" "${objects[@]}" -lstdc++ >"$out/link-$target.log" 2>&1; then
        grep -v "warning: Cannot export local symbol" "$out/link-$target.log" >&2
        exit 1
    fi
    corpus=Fuzz/corpus/$target
    crashes=Fuzz/regressions/$target
    found=$out/new-$target
    [[ ${FUZZ_GROW_CORPUS:-0} == 1 ]] && found=$corpus
    mkdir -p "$corpus" "$crashes" "$found"
    echo "==> fuzzing $target for $seconds s" >&2
    if ! "$out/fuzz-$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$found" "$corpus" 2>"$out/$target.log"; then
        echo "fuzzer $target found a crash; the input is in $crashes (log: $out/$target.log)" >&2
        tail -40 "$out/$target.log" >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$out/$target.log" >&2 || true
done
exit $status
