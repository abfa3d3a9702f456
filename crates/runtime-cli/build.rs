//! With `--features duckdb-linked`, the `runtime` binary links the prebuilt libduckdb in
//! DUCKDB_LIB_DIR (see scripts/libduckdb.sh): that folder is written into the binary as
//! its run-time search path (RUNPATH), so it runs without LD_LIBRARY_PATH as long as the
//! folder stays where it was at build time.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let linked = std::env::var_os("CARGO_FEATURE_DUCKDB_LINKED").is_some();
    let bundled = std::env::var_os("CARGO_FEATURE_DUCKDB").is_some();
    if let (true, false, Some(dir)) = (linked, bundled, std::env::var_os("DUCKDB_LIB_DIR")) {
        let dir = dir.to_string_lossy();
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{dir}");
    }
}
