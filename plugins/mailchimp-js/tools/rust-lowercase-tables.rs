// Prints the tables of plugins/mailchimp-js/src/rust.js: Rust's `char::to_lowercase` (LOWER,
// SPECIAL) and how `str::to_lowercase` decides a final sigma (SKIP: Case_Ignorable, CASED).
// `rustc -O rust-lowercase-tables.rs && ./rust-lowercase-tables`
fn b36(mut n: u64) -> String { const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz"; if n == 0 { return "0".into(); } let mut s = vec![]; while n > 0 { s.push(D[(n % 36) as usize]); n /= 36; } s.reverse(); String::from_utf8(s).unwrap() }
fn main() {
    // 1. simple lowercase mappings (single char), as runs: start, count, stride, delta
    let mut singles: Vec<(u32, i64)> = vec![];
    let mut specials = vec![];
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else { continue };
        if c == 'Σ' { continue; }
        let l: Vec<char> = c.to_lowercase().collect();
        if l.len() == 1 && l[0] == c { continue; }
        if l.len() != 1 { specials.push((cp, l.iter().map(|c| format!("{:x}", *c as u32)).collect::<Vec<_>>().join(" "))); continue; }
        singles.push((cp, l[0] as i64 - cp as i64));
    }
    // runs
    let mut runs: Vec<(u32, u32, u32, i64)> = vec![]; // start, count, stride, delta
    let mut i = 0;
    while i < singles.len() {
        let (s, d) = singles[i];
        let mut best = (1u32, 1u32);
        for stride in [1u32, 2] {
            let mut n = 1u32;
            while i + (n as usize) < singles.len() && singles[i + n as usize].0 == s + n * stride && singles[i + n as usize].1 == d { n += 1; }
            if n > best.0 { best = (n, stride); }
        }
        runs.push((s, best.0, best.1, d));
        i += best.0 as usize;
    }
    let mut prev = 0u32; let mut parts = vec![];
    for (s, n, st, d) in &runs {
        parts.push(format!("{}.{}.{}.{}{}", b36((s - prev) as u64), b36(*n as u64), st, if *d < 0 {"-"} else {""}, b36(d.unsigned_abs())));
        prev = *s;
    }
    println!("LOWER={}", parts.join(","));
    println!("SPECIAL={:?}", specials);
    println!("RUNS={} SINGLES={}", runs.len(), singles.len());
    // 2. sigma classes
    let mut skip: Vec<(u32,u32)> = vec![]; let mut cased: Vec<(u32,u32)> = vec![];
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else { continue };
        let s1: Vec<char> = format!("aΣ{c}").to_lowercase().chars().collect();
        let s2: Vec<char> = format!("aΣ{c}a").to_lowercase().chars().collect();
        let b = s1[1] == 'σ'; let a = s2[1] == 'σ';
        let push = |v: &mut Vec<(u32,u32)>| { if let Some(l) = v.last_mut() { if l.1 + 1 == cp { l.1 = cp; return; } } v.push((cp, cp)); };
        if b { push(&mut cased); } else if a { push(&mut skip); }
    }
    let enc = |v: &Vec<(u32,u32)>| { let mut prev = 0; v.iter().map(|(a, b)| { let s = format!("{}.{}", b36((a - prev) as u64), b36((b - a) as u64)); prev = b + 1; s }).collect::<Vec<_>>().join(",") };
    println!("SKIP={}", enc(&skip));
    println!("CASED={}", enc(&cased));
    println!("SKIPN={} CASEDN={}", skip.len(), cased.len());
}
