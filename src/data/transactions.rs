//! transactions_train.csv → compact columns (15 bytes a row). The CSV is read in blocks by one thread and
//! parsed by worker threads, so the text is never held in memory whole; customer ids resolve against the
//! interned customers table (shared read-only), and ids missing from it are interned afterwards in file order,
//! so indices do not depend on thread timing.

use super::articles::{ArticleIdx, Articles};
use super::error::{DataError, FieldError, Result};
use super::fields::{parse_article_id, parse_channel, parse_date, parse_hex32, parse_price, Day};
use super::header::map_columns;
use super::ids::{CustomerIds, CustomerIdx, CustomerKey};
use super::rejects::{LoadOptions, Reject};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub const TX_COLUMNS: [&str; 5] = ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"];

/// Customer ids not in the customers table are kept per chunk with this bit set until the merge.
const LOCAL_BIT: u32 = 1 << 31;
const BLOCK_BYTES: usize = 8 << 20;

/// All purchases, sorted by day (stable: file order within a day). Index i across the columns is one row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transactions {
    pub day: Vec<Day>,
    pub customer: Vec<CustomerIdx>,
    pub article: Vec<ArticleIdx>,
    pub price: Vec<f32>,
    pub channel: Vec<u8>,
}

/// What the transactions loader noticed, for the load report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxLoadStats {
    pub rows: u64,
    pub bytes: u64,
    pub unknown_customers: u64,
    pub rows_with_unknown_customer: u64,
    pub unknown_articles: u64,
    pub rows_with_unknown_article: u64,
    pub was_sorted: bool,
}

impl Transactions {
    pub fn len(&self) -> usize {
        self.day.len()
    }

    pub fn is_empty(&self) -> bool {
        self.day.is_empty()
    }

    /// First row index whose day is `>= day` (rows are sorted by day).
    pub fn lower_bound(&self, day: Day) -> usize {
        self.day.partition_point(|&d| d < day)
    }

    pub fn first_day(&self) -> Option<Day> {
        self.day.first().copied()
    }

    pub fn last_day(&self) -> Option<Day> {
        self.day.last().copied()
    }

    pub fn heap_bytes(&self) -> usize {
        self.day.capacity() * 2 + self.customer.capacity() * 4 + self.article.capacity() * 4 + self.price.capacity() * 4 + self.channel.capacity()
    }

    pub fn push(&mut self, day: Day, customer: CustomerIdx, article: ArticleIdx, price: f32, channel: u8) {
        self.day.push(day);
        self.customer.push(customer);
        self.article.push(article);
        self.price.push(price);
        self.channel.push(channel);
    }

    /// Stable sort by day (counting sort over the day range): file order is kept within a day.
    fn sort_by_day(&mut self) {
        let (Some(&lo), Some(&hi)) = (self.day.iter().min(), self.day.iter().max()) else { return };
        let mut start = vec![0usize; (hi - lo) as usize + 2];
        for &d in &self.day {
            start[(d - lo) as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut perm = vec![0u32; self.len()];
        for (i, &d) in self.day.iter().enumerate() {
            let slot = &mut start[(d - lo) as usize];
            perm[*slot] = i as u32;
            *slot += 1;
        }
        fn apply<T: Copy>(v: &mut Vec<T>, perm: &[u32]) {
            *v = perm.iter().map(|&i| v[i as usize]).collect();
        }
        apply(&mut self.day, &perm);
        apply(&mut self.customer, &perm);
        apply(&mut self.article, &perm);
        apply(&mut self.price, &perm);
        apply(&mut self.channel, &perm);
    }

    /// Loads CSV (parallel, streaming) or parquet. Unknown customers are interned into `ids`, unknown articles
    /// are added to `articles` with default attributes; both are counted in the stats.
    pub fn load(
        path: &Path,
        opts: &LoadOptions,
        ids: &mut CustomerIds,
        articles: &mut Articles,
        progress: &dyn Fn(u64),
    ) -> Result<(Self, TxLoadStats, Vec<Reject>)> {
        let (chunks, locals, rejects, bytes) = if super::table_reader::is_parquet(path) {
            let mut chunk = Chunk::new(0, 0);
            let mut local = CustomerIds::default();
            let rejects = {
                let mut parser = RowParser { ids, articles, local: &mut local, chunk: &mut chunk };
                super::table_reader::read_rows(path, &TX_COLUMNS, opts, &mut |_, f| parser.push(f))?
            };
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            (vec![chunk], vec![local], rejects, bytes)
        } else {
            read_csv_parallel(path, opts, ids, articles, progress)?
        };
        let (mut tx, mut stats) = merge(chunks, &locals, ids, articles);
        stats.bytes = bytes;
        stats.was_sorted = tx.day.windows(2).all(|w| w[0] <= w[1]);
        if !stats.was_sorted {
            tx.sort_by_day();
        }
        Ok((tx, stats, rejects))
    }
}

/// Rows parsed from one block, with customers still partly local to the worker that parsed it.
struct Chunk {
    seq: usize,
    worker: usize,
    lines: u64,
    tx: Transactions,
    /// (row in chunk, raw article id) for ids missing from the catalogue.
    unknown_articles: Vec<(u32, u32)>,
    rejects: Vec<Reject>,
    error: Option<DataError>,
}

impl Chunk {
    fn new(seq: usize, worker: usize) -> Self {
        Chunk { seq, worker, lines: 0, tx: Transactions::default(), unknown_articles: Vec::new(), rejects: Vec::new(), error: None }
    }
}

struct RowParser<'a> {
    ids: &'a CustomerIds,
    articles: &'a Articles,
    local: &'a mut CustomerIds,
    chunk: &'a mut Chunk,
}

impl RowParser<'_> {
    /// Fields in [`TX_COLUMNS`] order.
    #[inline]
    fn push(&mut self, f: &[&[u8]]) -> std::result::Result<(), FieldError> {
        let day = parse_date(f[0])?;
        let key = CustomerKey(parse_hex32("customer_id", f[1])?);
        let raw_article = parse_article_id(f[2])?;
        let price = parse_price(f[3])?;
        let channel = parse_channel(f[4])?;
        let customer = match self.ids.get(&key) {
            Some(c) => c,
            None => self.local.intern(key).0 | LOCAL_BIT,
        };
        let article = match self.articles.idx(raw_article) {
            Some(a) => a,
            None => {
                self.chunk.unknown_articles.push((self.chunk.tx.len() as u32, raw_article));
                0
            }
        };
        self.chunk.tx.push(day, customer, article, price, channel);
        Ok(())
    }
}

type Parsed = (Vec<Chunk>, Vec<CustomerIds>, Vec<Reject>, u64);

fn read_csv_parallel(
    path: &Path,
    opts: &LoadOptions,
    ids: &CustomerIds,
    articles: &Articles,
    progress: &dyn Fn(u64),
) -> Result<Parsed> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut first = Vec::with_capacity(BLOCK_BYTES);
    fill(&mut file, &mut first, BLOCK_BYTES).map_err(|e| DataError::io(path, e))?;
    let header_end = memchr::memchr(b'\n', &first).unwrap_or(first.len());
    if header_end == 0 && first.is_empty() {
        return Err(DataError::Empty { file: path.to_path_buf() });
    }
    let header_line = trim_cr(&first[..header_end]);
    let header: Vec<&[u8]> = header_line.split(|&c| c == b',').collect();
    let map = map_columns(path, &header, &TX_COLUMNS)?;
    let carry = first.get(header_end + 1..).unwrap_or(&[]).to_vec();

    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8);
    let (send, recv) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(workers + 1);
    let recv = Mutex::new(recv);
    let abort = AtomicBool::new(false);
    let mut total_bytes = first.len() as u64;

    let results: Vec<(Vec<Chunk>, CustomerIds)> = std::thread::scope(|s| -> Result<_> {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (recv, abort, map) = (&recv, &abort, &map);
                s.spawn(move || {
                    let mut local = CustomerIds::default();
                    let mut out = Vec::new();
                    loop {
                        let msg = recv.lock().map(|r| r.recv()).unwrap_or_else(|p| p.into_inner().recv());
                        let Ok((seq, block)) = msg else { break };
                        let mut chunk = Chunk::new(seq, w);
                        parse_block(path, &block, map, opts, ids, articles, &mut local, &mut chunk);
                        if chunk.error.is_some() {
                            abort.store(true, Ordering::Relaxed);
                        }
                        out.push(chunk);
                    }
                    (out, local)
                })
            })
            .collect();
        let mut carry = carry;
        let mut seq = 0;
        let read_result = (|| -> std::io::Result<()> {
            loop {
                if abort.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let mut buf = Vec::with_capacity(BLOCK_BYTES + carry.len());
                buf.extend_from_slice(&carry);
                let n = fill(&mut file, &mut buf, BLOCK_BYTES)?;
                total_bytes += n as u64;
                progress(total_bytes);
                let eof = n == 0;
                let cut = if eof { buf.len() } else { memchr::memrchr(b'\n', &buf).map_or(0, |p| p + 1) };
                carry = buf[cut..].to_vec();
                buf.truncate(cut);
                if !buf.is_empty() && send.send((seq, buf)).is_err() {
                    return Ok(());
                }
                seq += 1;
                if eof {
                    return Ok(());
                }
            }
        })();
        drop(send);
        let results = handles.into_iter().map(|h| h.join().expect("parser thread panicked")).collect();
        read_result.map_err(|e| DataError::io(path, e))?;
        Ok(results)
    })?;

    let mut chunks = Vec::new();
    let mut locals = Vec::new();
    for (c, l) in results {
        chunks.extend(c);
        locals.push(l);
    }
    chunks.sort_by_key(|c| c.seq);
    // Absolute lines: header is line 1; chunk k starts after all lines of chunks < k.
    let mut rejects = Vec::new();
    let mut before = 1u64;
    for c in &mut chunks {
        if let Some(err) = c.error.take() {
            return Err(shift_line(err, before));
        }
        for mut r in c.rejects.drain(..) {
            r.line += before;
            rejects.push(r);
        }
        before += c.lines;
    }
    Ok((chunks, locals, rejects, total_bytes))
}

fn shift_line(err: DataError, before: u64) -> DataError {
    match err {
        DataError::Field { file, line, column, value, reason } => DataError::Field { file, line: line + before, column, value, reason },
        DataError::FieldCount { file, line, expected, found } => DataError::FieldCount { file, line: line + before, expected, found },
        other => other,
    }
}

/// Reads until `want` more bytes are in `buf` or EOF; returns the bytes read.
fn fill(file: &mut std::fs::File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut got = 0;
    while got < want {
        match file.read(&mut buf[start + got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(start + got);
    Ok(got)
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

#[allow(clippy::too_many_arguments)]
fn parse_block(
    path: &Path,
    block: &[u8],
    map: &super::header::ColumnMap,
    opts: &LoadOptions,
    ids: &CustomerIds,
    articles: &Articles,
    local: &mut CustomerIds,
    chunk: &mut Chunk,
) {
    const MAX_FIELDS: usize = 32;
    let mut bounds = [0usize; MAX_FIELDS + 1];
    let mut parser = RowParser { ids, articles, local, chunk: &mut Chunk::new(0, 0) };
    std::mem::swap(parser.chunk, chunk);
    let mut line_start = 0usize;
    let mut n_fields = 0usize;
    let mut line_no = 0u64;
    let mut positions = memchr::memchr2_iter(b',', b'\n', block);
    loop {
        let pos = positions.next();
        let at = pos.unwrap_or(block.len());
        if pos.is_some() && block[at] == b',' {
            if n_fields < MAX_FIELDS {
                bounds[n_fields] = at;
            }
            n_fields += 1;
            continue;
        }
        // End of a line at `at`.
        if pos.is_none() && line_start >= block.len() {
            break;
        }
        line_no += 1;
        let line = trim_cr(&block[line_start..at]);
        if !line.is_empty() {
            let width = n_fields + 1;
            let outcome = if width != map.width {
                Err(DataError::FieldCount { file: path.to_path_buf(), line: line_no, expected: map.width, found: width })
            } else {
                let field = |i: usize| {
                    let s = if i == 0 { line_start } else { bounds[i - 1] + 1 };
                    let e = if i + 1 == width { line_start + line.len() } else { bounds[i] };
                    unquote(&block[s..e])
                };
                let f = [
                    field(map.positions[0]),
                    field(map.positions[1]),
                    field(map.positions[2]),
                    field(map.positions[3]),
                    field(map.positions[4]),
                ];
                parser.push(&f).map_err(|e| e.at(path, line_no))
            };
            if let Err(e) = outcome {
                if !opts.lenient {
                    parser.chunk.error = Some(e);
                    parser.chunk.lines = line_no;
                    std::mem::swap(parser.chunk, chunk);
                    return;
                }
                parser.chunk.rejects.push(Reject {
                    line: line_no,
                    reason: e.to_string(),
                    raw: String::from_utf8_lossy(line).into_owned(),
                });
            }
        }
        n_fields = 0;
        line_start = at + 1;
        if pos.is_none() {
            break;
        }
    }
    parser.chunk.lines = line_no;
    std::mem::swap(parser.chunk, chunk);
}

/// Resolves chunk-local customers and unknown articles in file order, then concatenates the columns one at a
/// time so peak memory stays near one copy of the data.
fn merge(mut chunks: Vec<Chunk>, locals: &[CustomerIds], ids: &mut CustomerIds, articles: &mut Articles) -> (Transactions, TxLoadStats) {
    let mut stats = TxLoadStats::default();
    let before_ids = ids.len();
    let before_articles = articles.len();
    for c in &mut chunks {
        for cust in c.tx.customer.iter_mut() {
            if *cust & LOCAL_BIT != 0 {
                let key = *locals[c.worker].key(*cust & !LOCAL_BIT);
                *cust = ids.intern(key).0;
                stats.rows_with_unknown_customer += 1;
            }
        }
        for &(row, raw) in &c.unknown_articles {
            c.tx.article[row as usize] = articles.idx_or_insert(raw);
        }
        stats.rows_with_unknown_article += c.unknown_articles.len() as u64;
    }
    stats.unknown_customers = (ids.len() - before_ids) as u64;
    stats.unknown_articles = (articles.len() - before_articles) as u64;
    let total: usize = chunks.iter().map(|c| c.tx.len()).sum();
    stats.rows = total as u64;
    fn concat<T: Copy>(chunks: &mut [Chunk], total: usize, col: impl Fn(&mut Transactions) -> &mut Vec<T>) -> Vec<T> {
        let mut out = Vec::with_capacity(total);
        for c in chunks.iter_mut() {
            let v = std::mem::take(col(&mut c.tx));
            out.extend_from_slice(&v);
        }
        out
    }
    let tx = Transactions {
        day: concat(&mut chunks, total, |t| &mut t.day),
        customer: concat(&mut chunks, total, |t| &mut t.customer),
        article: concat(&mut chunks, total, |t| &mut t.article),
        price: concat(&mut chunks, total, |t| &mut t.price),
        channel: concat(&mut chunks, total, |t| &mut t.channel),
    };
    (tx, stats)
}
