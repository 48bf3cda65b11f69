//! Names: nodes as module paths, parameters as var-store paths.

/// A node's name as a module path: PyTorch's exporter writes scopes such as
/// `/layer2/layer2.0/downsample/downsample.0/Conv`, which becomes `layer2.0.downsample.0`
/// (a scope that the next one repeats is dropped, and the trailing operation type).
pub fn node_name(raw: &str, op: &str) -> String {
    let parts: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let repeated = parts
            .get(i + 1)
            .is_some_and(|next| next.starts_with(&format!("{p}.")));
        if !repeated {
            kept.push(p);
        }
    }
    if kept.len() > 1 && kept.last().is_some_and(|l| *l == op) {
        kept.pop();
    }
    if kept.is_empty() {
        return op.to_ascii_lowercase();
    }
    sanitize(&kept.join("."))
}

/// A parameter or value name that libtorch's variable store accepts: dot-separated non-empty
/// segments of `[A-Za-z0-9_:-]`.
pub fn sanitize(name: &str) -> String {
    let segs: Vec<String> = name
        .split(['.', '/'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    if segs.is_empty() {
        "param".into()
    } else {
        segs.join(".")
    }
}
