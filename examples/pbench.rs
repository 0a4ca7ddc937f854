fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    let raws: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let t = std::time::Instant::now();
    let mut n = 0;
    for r in &raws {
        let m = mailroom::message::Message::parse(r).unwrap();
        n += mailroom::classify::classify(&m, "x") as usize;
    }
    println!(
        "parse+classify: {:.1} us/mail ({n})",
        t.elapsed().as_secs_f64() * 1e6 / raws.len() as f64
    );
}
