// abi!: a spec that cannot be read, one with problems (each reported at file:line:col),
// and input that is not a path.

mod missing {
    pv_macros::abi!("specs/no_such_spec.toml");
}

mod broken {
    pv_macros::abi!("specs/bad.toml");
}

mod not_a_path {
    pv_macros::abi!(spec = "specs/mini.toml");
}

fn main() {}
