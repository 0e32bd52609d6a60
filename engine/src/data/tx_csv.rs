//! The parallel CSV path of the transactions loader. The file is memory-mapped; pass 1 counts each block's
//! lines on every core, so each block knows where its rows go; pass 2 parses the blocks in parallel straight
//! into the final columns and releases each block's pages once parsed, so the text never sits in memory whole.
//! Customer lookups are batched with prefetches (see [`CustomerIds::get_batch`]); ids missing from the
//! customers table or the catalogue are numbered afterwards by first appearance in the file, so indices never
//! depend on thread timing.

use super::articles::{ArticleIdx, Articles};
use super::error::{DataError, Result};
use super::fields::{parse_hex32, Day};
use super::header::map_columns;
use super::ids::{CustomerIds, CustomerIdx, CustomerKey};
use super::rejects::{LoadOptions, Reject};
use super::transactions::{parse_row_with_key, Transactions, TX_COLUMNS};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Ids missing from the customers table or the catalogue carry this bit (with a worker-local index) until the
/// merge.
const LOCAL_BIT: u32 = 1 << 31;

/// One block of the CSV: whole lines, parsed into its own slice of the final columns.
struct Block<'a> {
    text: std::ops::Range<usize>,
    first_line: u64,
    worker: usize,
    day: &'a mut [Day],
    customer: &'a mut [CustomerIdx],
    article: &'a mut [ArticleIdx],
    price: &'a mut [f32],
    channel: &'a mut [u8],
    /// Rows written (from the start of the slices); lines that are blank or rejected leave room at the end.
    rows: usize,
    rejects: Vec<Reject>,
    error: Option<DataError>,
}

/// Ids a worker met that the customers table or the catalogue lacks, with the global row of their first
/// appearance (rows carry the local index with [`LOCAL_BIT`] until the merge).
#[derive(Default)]
struct LocalIds {
    ids: CustomerIds,
    first_row: Vec<u64>,
    articles: rustc_hash::FxHashMap<u32, u32>,
    article_ids: Vec<u32>,
    article_first_row: Vec<u64>,
}

impl LocalIds {
    fn article(&mut self, raw: u32, row: u64) -> u32 {
        let next = self.article_ids.len() as u32;
        let l = *self.articles.entry(raw).or_insert(next);
        if l == next {
            self.article_ids.push(raw);
            self.article_first_row.push(row);
        }
        l | LOCAL_BIT
    }
}

/// Global index for every worker-local id, assigned in order of first appearance in the file.
fn number_by_first_row(firsts_per_worker: Vec<&[u64]>, mut assign: impl FnMut(usize, u32) -> u32) -> Vec<Vec<u32>> {
    let mut firsts: Vec<(u64, usize, u32)> = Vec::new();
    for (w, rows) in firsts_per_worker.iter().enumerate() {
        firsts.extend(rows.iter().enumerate().map(|(i, &row)| (row, w, i as u32)));
    }
    firsts.sort_unstable();
    let mut remap: Vec<Vec<u32>> = firsts_per_worker.iter().map(|r| vec![0; r.len()]).collect();
    for (_, w, i) in firsts {
        remap[w][i as usize] = assign(w, i);
    }
    remap
}

/// Parses the CSV from a memory map in parallel, straight into the final columns:
/// pass 1 counts each block's lines (so every block knows where its rows go), pass 2 parses. Pages are
/// released after each pass over a block, so the file never counts against memory whole.
pub(super) fn read_csv_parallel(
    path: &Path,
    opts: &LoadOptions,
    ids: &mut CustomerIds,
    articles: &mut Articles,
    progress: &dyn Fn(u64),
    block_bytes: usize,
) -> Result<(Transactions, Vec<Reject>, u64, u64)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len() as usize;
    if len == 0 {
        return Err(DataError::Empty { file: path.to_path_buf() });
    }
    // SAFETY: the map is read-only and private; a file truncated under us is the caller's race, as with any reader.
    let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| DataError::io(path, e))?;
    let text: &[u8] = &map;
    let header_end = memchr::memchr(b'\n', text).unwrap_or(len);
    let header: Vec<&[u8]> = trim_cr(&text[..header_end]).split(|&c| c == b',').collect();
    let cols = map_columns(path, &header, &TX_COLUMNS)?;
    let release = |r: &std::ops::Range<usize>| {
        // SAFETY: the mapping is private and never written: dropped pages refault from the file unchanged.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, r.start, r.end - r.start) };
    };

    // Block boundaries at line ends.
    let mut ranges = Vec::new();
    let mut at = (header_end + 1).min(len);
    while at < len {
        let mut end = (at + block_bytes).min(len);
        if end < len {
            end = memchr::memchr(b'\n', &text[end..]).map_or(len, |p| end + p + 1);
        }
        ranges.push(at..end);
        at = end;
    }
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8);

    // Pass 1: lines per block.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let lines: Vec<std::sync::atomic::AtomicU64> = ranges.iter().map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = ranges.get(b) else { break };
                let chunk = &text[r.clone()];
                let n = memchr::memchr_iter(b'\n', chunk).count() + usize::from(chunk.last() != Some(&b'\n'));
                lines[b].store(n as u64, Ordering::Relaxed);
                release(r);
            });
        }
    });
    let lines: Vec<u64> = lines.into_iter().map(|a| a.into_inner()).collect();
    let total_lines: u64 = lines.iter().sum();

    let mut tx = Transactions {
        day: vec![0; total_lines as usize],
        customer: vec![0; total_lines as usize],
        article: vec![0; total_lines as usize],
        price: vec![0.0; total_lines as usize],
        channel: vec![0; total_lines as usize],
    };
    let mut blocks: Vec<Mutex<Block>> = Vec::with_capacity(ranges.len());
    {
        let (mut d, mut c, mut a, mut p, mut ch) =
            (&mut tx.day[..], &mut tx.customer[..], &mut tx.article[..], &mut tx.price[..], &mut tx.channel[..]);
        let mut first_line = 2u64;
        for (r, &n) in ranges.iter().zip(&lines) {
            let n = n as usize;
            let (d0, d1) = d.split_at_mut(n);
            let (c0, c1) = c.split_at_mut(n);
            let (a0, a1) = a.split_at_mut(n);
            let (p0, p1) = p.split_at_mut(n);
            let (ch0, ch1) = ch.split_at_mut(n);
            (d, c, a, p, ch) = (d1, c1, a1, p1, ch1);
            blocks.push(Mutex::new(Block {
                text: r.clone(),
                first_line,
                worker: 0,
                day: d0,
                customer: c0,
                article: a0,
                price: p0,
                channel: ch0,
                rows: 0,
                rejects: Vec::new(),
                error: None,
            }));
            first_line += n as u64;
        }
    }

    // Pass 2: parse.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let done_bytes = std::sync::atomic::AtomicU64::new(header_end as u64);
    let row_base: Vec<u64> = lines.iter().scan(0u64, |acc, &n| { let b = *acc; *acc += n; Some(b) }).collect();
    let (ids_ro, arts_ro) = (&*ids, &*articles);
    let locals: Vec<LocalIds> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (blocks, next, abort, done_bytes, cols, row_base) = (&blocks, &next, &abort, &done_bytes, &cols, &row_base);
                s.spawn(move || {
                    let mut local = LocalIds::default();
                    loop {
                        if abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        let Some(m) = blocks.get(b) else { break };
                        let mut blk = m.lock().unwrap_or_else(|p| p.into_inner());
                        blk.worker = w;
                        let r = blk.text.clone();
                        parse_block(path, &text[r.clone()], cols, opts, ids_ro, arts_ro, &mut local, row_base[b], &mut blk);
                        release(&r);
                        if blk.error.is_some() && !opts.lenient {
                            abort.store(true, Ordering::Relaxed);
                        }
                        done_bytes.fetch_add(r.len() as u64, Ordering::Relaxed);
                    }
                    local
                })
            })
            .collect();
        // The caller's progress callback stays on this thread: report the parsed bytes while workers run. The
        // wait starts short (a small file is parsed in microseconds) and grows to 20 ms.
        let mut wait = std::time::Duration::from_micros(50);
        while !handles.iter().all(|h| h.is_finished()) {
            progress(done_bytes.load(Ordering::Relaxed));
            std::thread::sleep(wait);
            wait = (wait * 2).min(std::time::Duration::from_millis(20));
        }
        handles.into_iter().map(|h| h.join().expect("parser thread panicked")).collect()
    });
    progress(len as u64);
    let mut blocks: Vec<Block> = blocks.into_iter().map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).collect();

    // Errors: the first block (in file order) with one; all earlier blocks finished, so its line is exact.
    let mut rejects = Vec::new();
    for b in &mut blocks {
        if let Some(e) = b.error.take() {
            return Err(e);
        }
        rejects.append(&mut b.rejects);
    }

    // Ids missing from the customers table or the catalogue: numbered by first appearance in the file.
    let cust_map = number_by_first_row(locals.iter().map(|l| l.first_row.as_slice()).collect(), |w, i| ids.intern(*locals[w].ids.key(i)).0);
    let art_map = number_by_first_row(locals.iter().map(|l| l.article_first_row.as_slice()).collect(), |w, i| {
        articles.idx_or_insert(locals[w].article_ids[i as usize])
    });
    let mut unknown_rows = 0u64;
    let mut write = 0usize;
    for b in &mut blocks {
        for c in b.customer[..b.rows].iter_mut() {
            if *c & LOCAL_BIT != 0 {
                *c = cust_map[b.worker][(*c & !LOCAL_BIT) as usize];
                unknown_rows += 1;
            }
        }
        for a in b.article[..b.rows].iter_mut() {
            if *a & LOCAL_BIT != 0 {
                *a = art_map[b.worker][(*a & !LOCAL_BIT) as usize];
            }
        }
        write += b.rows;
    }
    // Close the gaps left by blank or rejected lines (rare), keeping file order.
    let counts: Vec<(usize, usize)> = blocks.iter().map(|b| (b.day.len(), b.rows)).collect();
    drop(blocks);
    if write as u64 != total_lines {
        compact(&mut tx, &counts);
    }
    Ok((tx, rejects, unknown_rows, len as u64))
}

/// Moves each block's rows down so the columns are contiguous; `counts` = (slots, rows) per block.
fn compact(tx: &mut Transactions, counts: &[(usize, usize)]) {
    fn shift<T: Copy>(v: &mut Vec<T>, counts: &[(usize, usize)]) {
        let (mut read, mut write) = (0, 0);
        for &(slots, rows) in counts {
            v.copy_within(read..read + rows, write);
            read += slots;
            write += rows;
        }
        v.truncate(write);
        v.shrink_to_fit();
    }
    shift(&mut tx.day, counts);
    shift(&mut tx.customer, counts);
    shift(&mut tx.article, counts);
    shift(&mut tx.price, counts);
    shift(&mut tx.channel, counts);
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn unquote(f: &[u8]) -> &[u8] {
    if f.len() >= 2 && f[0] == b'"' && f[f.len() - 1] == b'"' {
        &f[1..f.len() - 1]
    } else {
        f
    }
}

/// Parsed rows waiting for their customer lookup (done a batch at a time, see [`CustomerIds::get_batch`]).
#[derive(Default)]
struct Pending {
    day: Vec<Day>,
    key: Vec<CustomerKey>,
    article: Vec<u32>,
    price: Vec<f32>,
    channel: Vec<u8>,
    found: Vec<Option<CustomerIdx>>,
}

const LOOKUP_BATCH: usize = 32;

impl Pending {
    fn flush(&mut self, ids: &CustomerIds, articles: &Articles, local: &mut LocalIds, row_base: u64, out: &mut Block) {
        ids.get_batch(&self.key, &mut self.found);
        for i in 0..self.key.len() {
            let row = out.rows;
            let global_row = row_base + row as u64;
            out.customer[row] = match self.found[i] {
                Some(c) => c,
                None => {
                    let (l, new) = local.ids.intern(self.key[i]);
                    if new {
                        local.first_row.push(global_row);
                    }
                    l | LOCAL_BIT
                }
            };
            out.article[row] = match articles.idx(self.article[i]) {
                Some(a) => a,
                None => local.article(self.article[i], global_row),
            };
            out.day[row] = self.day[i];
            out.price[row] = self.price[i];
            out.channel[row] = self.channel[i];
            out.rows += 1;
        }
        self.day.clear();
        self.key.clear();
        self.article.clear();
        self.price.clear();
        self.channel.clear();
    }
}

#[allow(clippy::too_many_arguments)]
fn parse_block(
    path: &Path,
    block: &[u8],
    map: &super::header::ColumnMap,
    opts: &LoadOptions,
    ids: &CustomerIds,
    articles: &Articles,
    local: &mut LocalIds,
    row_base: u64,
    out: &mut Block,
) {
    // Comma positions of the line's fields; a line wider than the header is refused before any is read.
    let mut bounds = vec![0usize; map.width];
    let mut last_date = (Vec::with_capacity(16), 0);
    // The last customer id decoded; an empty field never matches it (it is refused by the parser).
    let mut last_decoded: (&[u8], CustomerKey) = (&[], CustomerKey([0; 32]));
    let mut pending = Pending::default();
    let mut line_start = 0usize;
    let mut n_fields = 0usize;
    let mut line_no = 0u64;
    let mut positions = memchr::memchr2_iter(b',', b'\n', block);
    loop {
        let pos = positions.next();
        let at = pos.unwrap_or(block.len());
        if pos.is_some() && block[at] == b',' {
            if let Some(b) = bounds.get_mut(n_fields) {
                *b = at;
            }
            n_fields += 1;
            continue;
        }
        if pos.is_none() && line_start >= block.len() {
            break;
        }
        let line = trim_cr(&block[line_start..at]);
        let width = n_fields + 1;
        let this_line = out.first_line + line_no;
        line_no += 1;
        if !line.is_empty() {
            let outcome = if width != map.width {
                Err(DataError::FieldCount { file: path.to_path_buf(), line: this_line, expected: map.width, found: width })
            } else {
                let field = |i: usize| {
                    let s = if i == 0 { line_start } else { bounds[i - 1] + 1 };
                    let e = if i + 1 == width { line_start + line.len() } else { bounds[i] };
                    unquote(&block[s..e])
                };
                let f = [field(map.positions[0]), field(map.positions[1]), field(map.positions[2]), field(map.positions[3]), field(map.positions[4])];
                // Rows of one basket repeat the customer id: decode it once.
                let key = if !f[1].is_empty() && f[1] == last_decoded.0 {
                    Ok(last_decoded.1)
                } else {
                    parse_hex32("customer_id", f[1]).map(|k| {
                        last_decoded = (f[1], CustomerKey(k));
                        CustomerKey(k)
                    })
                };
                key.and_then(|k| parse_row_with_key(&f, k, &mut last_date)).map_err(|e| e.at(path, this_line))
            };
            match outcome {
                Ok((day, key, raw_article, price, channel)) => {
                    pending.day.push(day);
                    pending.key.push(key);
                    pending.article.push(raw_article);
                    pending.price.push(price);
                    pending.channel.push(channel);
                    if pending.key.len() == LOOKUP_BATCH {
                        pending.flush(ids, articles, local, row_base, out);
                    }
                }
                Err(e) if opts.lenient => out.rejects.push(Reject {
                    line: this_line,
                    reason: e.to_string(),
                    raw: String::from_utf8_lossy(line).into_owned(),
                }),
                Err(e) => {
                    out.error = Some(e);
                    return;
                }
            }
        }
        n_fields = 0;
        line_start = at + 1;
        if pos.is_none() {
            break;
        }
    }
    pending.flush(ids, articles, local, row_base, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const HEADER: &str = "t_dat,customer_id,article_id,price,sales_channel_id\n";

    fn cust(i: usize) -> String {
        format!("{i:064x}")
    }

    fn write_rows(dir: &Path, rows: &[String]) -> std::path::PathBuf {
        let p = dir.join("transactions_train.csv");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(HEADER.as_bytes()).unwrap();
        for r in rows {
            writeln!(f, "{r}").unwrap();
        }
        p
    }

    fn parse(path: &Path, opts: &LoadOptions, block: usize) -> Result<(Transactions, Vec<Reject>)> {
        let mut ids = CustomerIds::default();
        let mut arts = Articles::default();
        let (tx, rejects, _, _) = read_csv_parallel(path, opts, &mut ids, &mut arts, &|_| {}, block)?;
        Ok((tx, rejects))
    }

    #[test]
    fn small_blocks_give_the_same_rows_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<String> = (0..5000)
            .map(|i| format!("2020-09-{:02},{},{:010},0.{:04},{}", 1 + i / 500, cust(i % 97), 100_000 + i % 31, i, 1 + i % 2))
            .collect();
        let p = write_rows(dir.path(), &rows);
        let (whole, _) = parse(&p, &LoadOptions::strict(), 8 << 20).unwrap();
        let (blocks, _) = parse(&p, &LoadOptions::strict(), 1024).unwrap();
        assert_eq!(whole.len(), 5000);
        assert_eq!(whole, blocks);
        assert!((whole.price[4321] - 0.4321).abs() < 1e-6);
    }

    #[test]
    fn error_line_is_exact_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows: Vec<String> = (0..3000).map(|i| format!("2020-09-01,{},0108775015,0.01,2", cust(i))).collect();
        rows[2500] = format!("2020-13-01,{},0108775015,0.01,2", cust(1));
        let p = write_rows(dir.path(), &rows);
        let err = parse(&p, &LoadOptions::strict(), 2048).unwrap_err().to_string();
        // header is line 1, row index 2500 is line 2502
        assert!(err.contains(":2502:") && err.contains("t_dat"), "{err}");
        let (tx, rejects) = parse(&p, &LoadOptions::lenient(dir.path()), 2048).unwrap();
        assert_eq!(tx.len(), 2999);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, 2502);
        assert!(rejects[0].raw.starts_with("2020-13-01"));
    }

    #[test]
    fn event_time_a_file_row_from_the_wrong_century_is_refused_with_its_line() {
        // One 2149 row once made `backtest` score a week in 2149 without a word.
        let dir = tempfile::tempdir().unwrap();
        for bad in ["2149-06-06", "1970-01-02"] {
            let mut rows: Vec<String> = (0..10).map(|i| format!("2020-09-01,{},0108775015,0.01,2", cust(i))).collect();
            rows[7] = format!("{bad},{},0108775015,0.01,2", cust(1));
            let p = write_rows(dir.path(), &rows);
            let err = parse(&p, &LoadOptions::strict(), 8 << 20).unwrap_err().to_string();
            assert!(err.contains(":9:") && err.contains("t_dat") && err.contains("valid window"), "{err}");
            let (tx, rejects) = parse(&p, &LoadOptions::lenient(dir.path()), 8 << 20).unwrap();
            assert_eq!((tx.len(), rejects.len()), (9, 1));
            assert!(tx.day.iter().all(|&d| d == tx.day[0]), "the bad row moved no day");
        }
    }

    #[test]
    fn a_header_wider_than_32_columns_is_read_by_name() {
        // Fields past the 32nd once indexed a fixed array of comma positions and panicked (csv_tables fuzz target).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wide.csv");
        let extra: Vec<String> = (0..40).map(|i| format!("x{i}")).collect();
        let mut text = format!("{},t_dat,customer_id,article_id,price,sales_channel_id\n", extra.join(","));
        let blanks = vec![""; 40].join(",");
        text += &format!("{blanks},2020-09-01,{},0108775015,0.5,2\n", cust(3));
        text += &format!("{blanks},2020-09-02,{},0108775016,0.25,1\n", cust(4));
        text += &format!("{blanks},2020-09-02,{}\n", cust(4));
        std::fs::write(&p, text).unwrap();
        let (tx, rejects) = parse(&p, &LoadOptions::lenient(dir.path()), 8 << 20).unwrap();
        assert_eq!((tx.len(), rejects.len()), (2, 1));
        assert_eq!((tx.price[1], tx.channel[1]), (0.25, 1));
        assert_eq!(rejects[0].line, 4);
        let err = parse(&p, &LoadOptions::strict(), 8 << 20).unwrap_err().to_string();
        assert!(err.contains(":4:"), "{err}");
    }

    #[test]
    fn an_empty_customer_id_on_a_blocks_first_row_is_refused() {
        // The decoded-id cache starts empty: an empty field must not match it and load as the all-zero key.
        let dir = tempfile::tempdir().unwrap();
        let p = write_rows(dir.path(), &["2020-09-01,,0108775015,0.01,1".to_string(), format!("2020-09-01,{},0108775015,0.01,1", cust(1))]);
        let err = parse(&p, &LoadOptions::strict(), 8 << 20).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("customer_id"), "{err}");
    }

    #[test]
    fn unknown_customers_are_interned_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<String> = [5, 3, 5, 9, 3].iter().map(|&i| format!("2020-09-01,{},0108775015,0.01,1", cust(i))).collect();
        let p = write_rows(dir.path(), &rows);
        let (tx, _) = parse(&p, &LoadOptions::strict(), 64).unwrap();
        assert_eq!(tx.customer, vec![0, 1, 0, 2, 1]);
    }
}
