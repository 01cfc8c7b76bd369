// Prints the table of sdk-js/src/quoted.js: the code points Rust's `Debug` for `str` escapes as
// `\u{…}`. Run with any Rust toolchain: `rustc -O rust-debug-table.rs && ./rust-debug-table`
// (the MID= line; its ranges are re-encoded as gap.length in base 36).
fn main() {
    // ranges of chars escaped by str's Debug in the middle of a string, and those escaped only first
    let mut mid: Vec<(u32,u32)> = vec![];
    let mut first_only: Vec<(u32,u32)> = vec![];
    let mut forms = std::collections::BTreeSet::new();
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else { continue };
        let alone = format!("{:?}", c.to_string());
        let mid_s = format!("{:?}", format!("a{c}"));
        let esc_mid = mid_s != format!("\"a{c}\"");
        let esc_first = alone != format!("\"{c}\"");
        if esc_mid {
            let inner = &mid_s[2..mid_s.len()-1];
            let expect = format!("\\u{{{:x}}}", cp);
            if inner != expect { forms.insert(format!("{cp:x} -> {inner}")); }
        }
        let push = |v: &mut Vec<(u32,u32)>| { if let Some(l) = v.last_mut() { if l.1 + 1 == cp { l.1 = cp; return; } } v.push((cp, cp)); };
        if esc_mid { push(&mut mid); } else if esc_first { push(&mut first_only); }
    }
    println!("forms {:?}", forms);
    println!("mid {}", mid.len());
    println!("MID={}", mid.iter().map(|(a,b)| format!("{a:x}-{b:x}")).collect::<Vec<_>>().join(","));
    println!("FIRST={}", first_only.iter().map(|(a,b)| format!("{a:x}-{b:x}")).collect::<Vec<_>>().join(","));
}
