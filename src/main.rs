//! The `poisonscan` command line: a thin layer over the library.
//!
//! Exit codes: 0 pass, 1 policy violated (or mismatch for `verify` / `diff`), 2 usage or configuration error,
//! 3 input/IO error or incomplete scan. The last stdout line is a one-line summary.

use clap::{Args, Parser, Subcommand};
use poisonscan::attest;
use poisonscan::detect::DetectConfig;
use poisonscan::lineage::{self, Key, Manifest};
use poisonscan::output::{check_outputs, OutputSet};
use poisonscan::report::RowScores;
use poisonscan::{Contract, Error, Policy, Scanner, Source};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "poisonscan",
    version,
    about = "Scan ML training data for poisoning before training on it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Infer a contract from trusted reference data.
    Profile {
        /// Reference data (Parquet file or folder, Arrow IPC, CSV).
        reference: PathBuf,
        /// Label column.
        #[arg(long)]
        label: Option<String>,
        /// Id column.
        #[arg(long)]
        id: Option<String>,
        /// Where to write the contract JSON.
        #[arg(short, long)]
        output: PathBuf,
        /// Rows per batch.
        #[arg(long, default_value_t = poisonscan::source::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
    },
    /// Fit a scanner on trusted reference data and save it (contract, calibration, the rows detectors fit on).
    Fit {
        /// Reference data (Parquet file or folder, Arrow IPC, CSV).
        reference: PathBuf,
        /// Label column.
        #[arg(long)]
        label: Option<String>,
        /// Id column.
        #[arg(long)]
        id: Option<String>,
        /// Feature columns, comma-separated (default: chosen as in a scan).
        #[arg(long, value_delimiter = ',')]
        features: Option<Vec<String>>,
        /// Embedding column.
        #[arg(long)]
        embedding: Option<String>,
        /// Where to write the fitted scanner (`.psfit`, an Arrow IPC file).
        #[arg(short, long)]
        output: PathBuf,
        /// Rows per batch.
        #[arg(long, default_value_t = poisonscan::source::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
    },
    /// Scan data: contract checks, lineage, detectors, verdict.
    Scan(Box<ScanArgs>),
    /// Write a manifest (fingerprint, Merkle root, row digests) of the data.
    Lineage {
        /// Data to fingerprint.
        data: PathBuf,
        /// Id column (rows are then matched by id in `diff`).
        #[arg(long)]
        id: Option<String>,
        /// Manifest to write (Parquet).
        #[arg(short, long)]
        output: PathBuf,
        /// Secret for keyed digests (else POISONSCAN_KEY).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Check that DATA is exactly what MANIFEST describes, or with --public-key what a signed ATTESTATION says
    /// (exit 0 match, 1 mismatch or a signature that does not verify).
    Verify {
        /// Trusted manifest; with --public-key, a signed attestation (`attest`, `scan --attest`).
        manifest: PathBuf,
        /// Data.
        data: PathBuf,
        /// Ed25519 public key (SPKI PEM): verify a signed attestation, no secret needed.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// With --public-key: also require that an attested scan verdict is pass or warn.
        #[arg(long, requires = "public_key")]
        require_pass: bool,
        /// Secret for keyed manifests (else POISONSCAN_KEY).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Sign a manifest (`lineage`) or a scan report (`scan --report`) as an in-toto attestation (DSSE, Ed25519)
    /// that anyone with the public key can verify against the data.
    Attest {
        /// Manifest (Parquet) or scan report (JSON).
        input: PathBuf,
        /// Ed25519 private key (PKCS#8 PEM, as `keygen` or `openssl genpkey -algorithm ed25519` writes).
        #[arg(long)]
        signing_key: PathBuf,
        /// Where to write the attestation (DSSE envelope JSON).
        #[arg(short, long)]
        output: PathBuf,
        /// Secret of a keyed manifest, to check its seal before signing (else POISONSCAN_KEY).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Make an Ed25519 key pair for attestations: the private key at OUTPUT, the public key beside it (.pub.pem).
    Keygen {
        /// Private key to write (PKCS#8 PEM, owner-only permissions); never overwritten.
        #[arg(short, long)]
        output: PathBuf,
        /// Public key to write (default: OUTPUT with .pub.pem).
        #[arg(long)]
        public: Option<PathBuf>,
    },
    /// Rows added, removed and changed since a trusted manifest (exit 0 identical, 1 differences).
    Diff {
        /// Trusted manifest.
        manifest: PathBuf,
        /// Data now.
        data: PathBuf,
        /// Id column to match rows by: the one the manifest was made with (`lineage --id`), which the manifest
        /// records and the diff uses without this flag; given, it is checked against the manifest.
        #[arg(long)]
        id: Option<String>,
        /// Per-row status table (Parquet or CSV).
        #[arg(long)]
        scores: Option<PathBuf>,
        /// JSON summary with `added`, `removed`, `changed`.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Secret for keyed manifests (else POISONSCAN_KEY).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ScanArgs {
    /// Data to scan (Parquet file or folder, Arrow IPC, CSV).
    data: PathBuf,
    /// Label column.
    #[arg(long)]
    label: Option<String>,
    /// Id column (carried into the scores file; used to match rows against a baseline).
    #[arg(long)]
    id: Option<String>,
    /// Trusted reference data: contract and detectors are fitted on it.
    #[arg(long, conflicts_with = "contract")]
    reference: Option<PathBuf>,
    /// Contract JSON written by `profile`.
    #[arg(long, conflicts_with = "fitted")]
    contract: Option<PathBuf>,
    /// Fitted scanner written by `fit` (instead of --reference; its label, id and features are used).
    #[arg(long, conflicts_with = "reference")]
    fitted: Option<PathBuf>,
    /// Policy TOML (per-check warn_if / error_if).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Per-row scores (Parquet, or CSV by extension).
    #[arg(long)]
    scores: Option<PathBuf>,
    /// JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// HTML report (one self-contained file: verdict, checks, flagged rows, plots).
    #[arg(long)]
    html: Option<PathBuf>,
    /// Append audit events (JSON lines, Elastic Common Schema): the verdict and each check that warned or failed.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Write an OpenLineage run event with data-quality facets to this file, or POST it to this http(s) URL.
    #[arg(long)]
    openlineage: Option<String>,
    /// Sign the scan's verdict: write an in-toto attestation (DSSE, Ed25519) here; needs --signing-key.
    #[arg(long, requires = "signing_key")]
    attest: Option<PathBuf>,
    /// Ed25519 private key (PKCS#8 PEM) for --attest.
    #[arg(long, requires = "attest")]
    signing_key: Option<PathBuf>,
    /// Write the rows kept here (same schema as the input).
    #[arg(long)]
    clean: Option<PathBuf>,
    /// Write the flagged rows here.
    #[arg(long)]
    quarantine: Option<PathBuf>,
    /// Trusted manifest to diff against (rows changed since it are flagged).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Secret for keyed digests (else POISONSCAN_KEY).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Feature columns, comma-separated (default: all numeric columns but label and id).
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Embedding column (FixedSizeList<float> or List<float>).
    #[arg(long)]
    embedding: Option<String>,
    /// Column of model out-of-sample class probabilities (List<float>, label order).
    #[arg(long)]
    pred_probs: Option<String>,
    /// Neighbours for the label-flip detector.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// IVF lists each label-flip neighbour search probes (a base of 4,000 rows or more, the reference or else the
    /// data, has about 2 sqrt(n) lists; a smaller one is searched exactly). More probes: closer to exact, slower.
    #[arg(long, default_value_t = DetectConfig::default().nprobe)]
    ivf_probes: usize,
    /// Skip the outlier detector.
    #[arg(long)]
    no_outliers: bool,
    /// Skip the label-flip detector.
    #[arg(long)]
    no_label_flips: bool,
    /// Skip the backdoor detector.
    #[arg(long)]
    no_backdoors: bool,
    /// Accept integer data in a float column of the reference or contract (a changed type is otherwise a schema
    /// error, exit 2; CSV data is always read this way).
    #[arg(long)]
    allow_widening: bool,
    /// Rows per batch.
    #[arg(long, default_value_t = poisonscan::source::DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Score the data this many rows at a time against one fit (--reference, --fitted or --contract), in memory
    /// bounded by one chunk; scores, report and split are written as the chunks go. Duplicates, sub-clusters and
    /// the data's own neighbours are compared within each chunk.
    #[arg(long)]
    chunk_rows: Option<usize>,
    /// No progress spinner.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    // One line per panic, no backtrace: a decoder panic on a malformed file is caught and reported as a typed
    // error right after this line (exit 3); a panic that is not caught still says where it happened.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = poisonscan::error::panic_message(info.payload()).unwrap_or("(no message)");
        eprintln!("poisonscan: panic{at}: {msg}");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            let _ = e.print();
            println!("poisonscan: error (usage): invalid command line, verdict ERROR");
            return ExitCode::from(2);
        }
    };
    let name = match &cli.command {
        Command::Profile { .. } => "profile",
        Command::Fit { .. } => "fit",
        Command::Scan(_) => "scan",
        Command::Lineage { .. } => "lineage",
        Command::Verify { .. } => "verify",
        Command::Diff { .. } => "diff",
        Command::Attest { .. } => "attest",
        Command::Keygen { .. } => "keygen",
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            println!(
                "poisonscan: error ({}): {name} incomplete, verdict ERROR",
                e.kind()
            );
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// The (role, path) pairs of the inputs given.
fn given<'a, const N: usize>(paths: [(&'a str, Option<&'a Path>); N]) -> Vec<(&'a str, &'a Path)> {
    paths
        .into_iter()
        .filter_map(|(what, p)| p.map(|p| (what, p)))
        .collect()
}

fn source(path: &Path, batch_size: usize) -> Result<Source, Error> {
    Ok(Source::path(path)?.with_batch_size(batch_size))
}

fn run(cmd: Command) -> Result<u8, Error> {
    match cmd {
        Command::Profile {
            reference,
            label,
            id,
            output,
            batch_size,
        } => {
            check_outputs(&[("the reference", &reference)], &[("-o", &output)])?;
            let mut src = source(&reference, batch_size)?;
            let c = poisonscan::scan::profile_reference(
                &mut src,
                label.as_deref(),
                id.as_deref(),
                None,
                None,
            )?;
            poisonscan::output::write_text_atomically(&output, &c.to_json())?;
            println!(
                "poisonscan: profiled {} rows, {} columns from {} -> {}",
                c.rows,
                c.columns.len(),
                reference.display(),
                output.display()
            );
            Ok(0)
        }
        Command::Fit {
            reference,
            label,
            id,
            features,
            embedding,
            output,
            batch_size,
        } => {
            check_outputs(&[("the reference", &reference)], &[("-o", &output)])?;
            let mut src = source(&reference, batch_size)?;
            let f = poisonscan::fit::FittedScanner::fit(
                &mut src,
                label.as_deref(),
                id.as_deref(),
                features,
                embedding.as_deref(),
            )?;
            f.save(&output)?;
            println!(
                "poisonscan: fitted on {} rows of {} ({} columns), hash {} -> {}",
                f.rows(),
                reference.display(),
                f.contract().columns.len(),
                &f.hash()[..16],
                output.display()
            );
            Ok(0)
        }
        Command::Scan(a) => scan(*a),
        Command::Lineage {
            data,
            id,
            output,
            key_file,
        } => {
            check_outputs(
                &given([
                    ("the data", Some(&data)),
                    ("--key-file", key_file.as_deref()),
                ]),
                &[("-o", &output)],
            )?;
            let key = Key::resolve(key_file.as_deref())?;
            let mut src = source(&data, poisonscan::source::DEFAULT_BATCH_SIZE)?;
            let m = lineage::make_manifest(&mut src, id.as_deref(), key.as_ref())?;
            m.write(&output)?;
            let dups = duplicate_ids_note(m.ids.as_deref(), id.as_deref(), "the data");
            println!(
                "poisonscan: {} rows, fingerprint {}, merkle root {}{}{} -> {}",
                m.header.fingerprint.rows,
                &m.header.fingerprint.lthash[..16],
                &m.header.fingerprint.merkle_root[..16],
                if m.header.keyed { " (keyed)" } else { "" },
                dups.map(|d| format!(", {} repeated id values", d.values))
                    .unwrap_or_default(),
                output.display()
            );
            Ok(0)
        }
        Command::Verify {
            manifest,
            data,
            public_key: Some(public_key),
            require_pass,
            key_file,
        } => verify_attestation(
            &manifest,
            &data,
            &public_key,
            require_pass,
            key_file.as_deref(),
        ),
        Command::Verify {
            manifest,
            data,
            public_key: None,
            key_file,
            ..
        } => {
            let key = Key::resolve(key_file.as_deref())?;
            let m = Manifest::read(&manifest)?;
            let mut src = source(&data, poisonscan::source::DEFAULT_BATCH_SIZE)?;
            let v = lineage::verify(&m, &mut src, key.as_ref())?;
            for p in &v.problems {
                eprintln!("mismatch: {p}");
            }
            println!(
                "poisonscan: verify {} against {}: {}",
                data.display(),
                manifest.display(),
                if v.matches { "MATCH" } else { "MISMATCH" }
            );
            Ok(if v.matches { 0 } else { 1 })
        }
        Command::Attest {
            input,
            signing_key,
            output,
            key_file,
        } => {
            check_outputs(
                &given([
                    ("the input", Some(&input)),
                    ("--signing-key", Some(&signing_key)),
                    ("--key-file", key_file.as_deref()),
                ]),
                &[("-o", &output)],
            )?;
            let sk = attest::read_signing_key(&signing_key)?;
            let key = Key::resolve(key_file.as_deref())?;
            let st = attest::statement_for_file(&input, key.as_ref())?;
            let env = attest::sign(&st, &sk);
            poisonscan::output::write_text_atomically(&output, &env.to_json())?;
            println!(
                "poisonscan: attested {} ({}), key {} -> {}",
                input.display(),
                st.predicate_type,
                &env.signatures[0].keyid[..16],
                output.display()
            );
            Ok(0)
        }
        Command::Keygen { output, public } => {
            let public = public.unwrap_or_else(|| attest::public_key_path(&output));
            let id = attest::write_key_pair(&output, &public)?;
            println!(
                "poisonscan: key {id}: private {} (keep it secret), public {}",
                output.display(),
                public.display()
            );
            Ok(0)
        }
        Command::Diff {
            manifest,
            data,
            id,
            scores,
            report,
            key_file,
        } => diff(
            &manifest,
            &data,
            id.as_deref(),
            scores.as_deref(),
            report.as_deref(),
            key_file.as_deref(),
        ),
    }
}

fn scan(a: ScanArgs) -> Result<u8, Error> {
    let output_paths = given([
        ("--scores", a.scores.as_deref()),
        ("--report", a.report.as_deref()),
        ("--html", a.html.as_deref()),
        (
            "--openlineage",
            a.openlineage
                .as_deref()
                .filter(|t| !t.starts_with("http://") && !t.starts_with("https://"))
                .map(Path::new),
        ),
        ("--clean", a.clean.as_deref()),
        ("--quarantine", a.quarantine.as_deref()),
        ("--attest", a.attest.as_deref()),
    ]);
    let inputs = given([
        ("the data", Some(a.data.as_path())),
        ("--reference", a.reference.as_deref()),
        ("--contract", a.contract.as_deref()),
        ("--fitted", a.fitted.as_deref()),
        ("--policy", a.policy.as_deref()),
        ("--baseline", a.baseline.as_deref()),
        ("--key-file", a.key_file.as_deref()),
        ("--signing-key", a.signing_key.as_deref()),
    ]);
    check_outputs(&inputs, &output_paths)?;
    // The audit log is appended to, not replaced: it only must not be an input or another output.
    if let Some(log) = &a.audit_log {
        let mut all = inputs.clone();
        all.extend(output_paths.iter().cloned());
        check_outputs(&all, &[("--audit-log", log.as_path())])?;
    }
    // Every output is staged now (an unwritable path fails before the data is read) and renamed into place only
    // when all are written.
    let outputs = OutputSet::prepare(&output_paths)?;
    let key = Key::resolve(a.key_file.as_deref())?;
    // Read before the scan: a bad key is a configuration error, not a scan thrown away at the end.
    let signing_key = a
        .signing_key
        .as_deref()
        .map(attest::read_signing_key)
        .transpose()?;
    let policy = match &a.policy {
        Some(p) => Policy::read(p)?,
        None => Policy::default(),
    };
    if a.k == 0 {
        return Err(Error::Usage("--k must be at least 1".into()));
    }
    if a.ivf_probes == 0 {
        return Err(Error::Usage("--ivf-probes must be at least 1".into()));
    }
    let detect = DetectConfig {
        outliers: !a.no_outliers,
        label_flips: !a.no_label_flips,
        backdoors: !a.no_backdoors,
        k: a.k,
        nprobe: a.ivf_probes,
        ..DetectConfig::default()
    };
    let mut s = Scanner::new(source(&a.data, a.batch_size)?)
        .policy(policy)
        .detect_config(detect)
        .key(key)
        .allow_widening(a.allow_widening)
        .progress(!a.quiet);
    if let Some(l) = a.label.clone() {
        s = s.label(l);
    }
    if let Some(i) = a.id.clone() {
        s = s.id(i);
    }
    if let Some(f) = a.features.clone() {
        s = s.features(f);
    }
    if let Some(e) = a.embedding.clone() {
        s = s.embedding(e);
    }
    if let Some(p) = a.pred_probs.clone() {
        s = s.pred_probs(p);
    }
    if let Some(r) = &a.reference {
        s = s.reference(source(r, a.batch_size)?);
    } else if let Some(c) = &a.contract {
        s = s.contract(Contract::read(c)?, c.display().to_string());
    } else if let Some(f) = &a.fitted {
        s = s.fitted(
            poisonscan::fit::FittedScanner::load(f)?,
            f.display().to_string(),
        )?;
    }
    if let Some(b) = &a.baseline {
        s = s.baseline(Manifest::read(b)?, b.display().to_string());
    }
    if let Some(rows) = a.chunk_rows {
        return scan_chunked(s, rows, &a, outputs);
    }
    let mut out = s.run()?;
    if let Some(p) = &a.scores {
        out.scores.write_to(outputs.file(p)?, p)?;
    }
    let report_json = out.report.to_json();
    if let Some(p) = &a.report {
        outputs.write_text(p, &report_json)?;
    }
    if let (Some(p), Some(sk)) = (&a.attest, &signing_key) {
        let report_name = a
            .report
            .as_deref()
            .map(|r| r.display().to_string())
            .unwrap_or_else(|| "report.json".into());
        let st = attest::scan_statement(
            &out.report,
            &report_json,
            &report_name,
            &a.data.display().to_string(),
            matches!(out.hash_mode, lineage::HashMode::Keyed(_)),
        );
        outputs.write_text(p, &attest::sign(&st, sk).to_json())?;
    }
    if let Some(p) = &a.html {
        outputs.write_text(p, &out.to_html())?;
    }
    if a.clean.is_some() || a.quarantine.is_some() {
        out.split_into(&outputs, a.clean.as_deref(), a.quarantine.as_deref())?;
    }
    if let Some(target) = &a.openlineage {
        if !target.starts_with("http://") && !target.starts_with("https://") {
            let p = PathBuf::from(target);
            let text = serde_json::to_string_pretty(&out.openlineage_event()).unwrap_or_default();
            outputs.write_text(&p, &text)?;
        }
    }
    outputs.commit()?;
    // Events go out once every output is in place: an audit line or a lineage event never describes a scan whose
    // outputs were not written.
    if let Some(p) = &a.audit_log {
        poisonscan::events::append_audit_log(p, &out.audit_events())?;
    }
    if let Some(url) = a.openlineage.as_deref().filter(|t| t.starts_with("http")) {
        poisonscan::events::send_openlineage(url, &out.openlineage_event())?;
    }
    for note in &out.report.notes {
        eprintln!("note: {note}");
    }
    for row in out.report.sample.iter().take(10) {
        eprintln!("  row {}: {:.2} {}", row.row, row.score, row.reasons);
    }
    println!("{}", out.report.summary);
    Ok(out.report.verdict.exit_code() as u8)
}

/// `scan --chunk-rows`: scores and split rows are written chunk by chunk into the staged outputs, the merged report
/// at the end, and all are renamed into place only when every chunk was scanned.
fn scan_chunked(s: Scanner, rows: usize, a: &ScanArgs, outputs: OutputSet) -> Result<u8, Error> {
    let whole = [
        ("--html", a.html.is_some()),
        ("--attest", a.attest.is_some()),
        ("--openlineage", a.openlineage.is_some()),
        ("--audit-log", a.audit_log.is_some()),
        ("--baseline", a.baseline.is_some()),
    ];
    let refused: Vec<&str> = whole
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect();
    if !refused.is_empty() {
        return Err(Error::Usage(format!(
            "{} {} every row's scores at once: scan without --chunk-rows",
            refused.join(", "),
            if refused.len() == 1 { "needs" } else { "need" }
        )));
    }
    let report = s.run_chunked_into(
        rows,
        &outputs,
        a.scores.as_deref(),
        a.clean.as_deref(),
        a.quarantine.as_deref(),
    )?;
    if let Some(p) = &a.report {
        outputs.write_text(p, &report.to_json())?;
    }
    outputs.commit()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for row in report.sample.iter().take(10) {
        eprintln!("  row {}: {:.2} {}", row.row, row.score, row.reasons);
    }
    println!("{}", report.merged.summary);
    Ok(report.merged.verdict.exit_code() as u8)
}

fn verify_attestation(
    attestation: &Path,
    data: &Path,
    public_key: &Path,
    require_pass: bool,
    key_file: Option<&Path>,
) -> Result<u8, Error> {
    let pk = attest::read_public_key(public_key)?;
    let text = attest::read_file(attestation)?;
    let key = Key::resolve(key_file)?;
    let mut src = source(data, poisonscan::source::DEFAULT_BATCH_SIZE)?;
    let mut c = attest::verify_attestation(&text, &pk, &mut src, key.as_ref())?;
    if require_pass {
        c.require_pass("--require-pass");
    }
    for p in &c.problems {
        eprintln!("not verified: {p}");
    }
    let what = match (c.predicate_type.as_deref(), c.verdict.as_deref()) {
        (Some(attest::SCAN_PREDICATE), Some(v)) => format!("scan verdict {}", v.to_uppercase()),
        (Some(attest::LINEAGE_PREDICATE), _) => "lineage".to_string(),
        _ => "unknown statement".to_string(),
    };
    println!(
        "poisonscan: verify {} against attestation {} ({what}, key {}): {}",
        data.display(),
        attestation.display(),
        &c.key_id[..16],
        if c.verified {
            "VERIFIED"
        } else {
            "NOT VERIFIED"
        }
    );
    Ok(if c.verified { 0 } else { 1 })
}

/// Repeated id values of `ids`, told on stderr (matching by id is ambiguous for them).
fn duplicate_ids_note(
    ids: Option<&[String]>,
    column: Option<&str>,
    what: &str,
) -> Option<lineage::DuplicateIds> {
    let d = lineage::DuplicateIds::find(ids?)?;
    eprintln!(
        "note: in {what}, {}: rows that share an id cannot be told apart by id",
        d.describe(column.unwrap_or("id"))
    );
    Some(d)
}

fn diff(
    manifest: &Path,
    data: &Path,
    id: Option<&str>,
    scores: Option<&Path>,
    report: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<u8, Error> {
    let output_paths = given([("--scores", scores), ("--report", report)]);
    check_outputs(
        &given([
            ("the manifest", Some(manifest)),
            ("the data", Some(data)),
            ("--key-file", key_file),
        ]),
        &output_paths,
    )?;
    let outputs = OutputSet::prepare(&output_paths)?;
    let key = Key::resolve(key_file)?;
    let m = Manifest::read(manifest)?;
    if let Some(want) = id {
        if m.header.id_column.is_none() {
            return Err(Error::Usage(format!(
                "--id {want}: {} was made without an id column, so its rows can only be matched by content; \
                 drop --id, or re-create the manifest with `poisonscan lineage DATA --id {want}`",
                manifest.display()
            )));
        }
        lineage::check_id_column(&m, &manifest.display().to_string(), want)?;
    }
    let mut src = source(data, poisonscan::source::DEFAULT_BATCH_SIZE)?;
    let (df, d) =
        lineage::diff_source(&m, &manifest.display().to_string(), &mut src, key.as_ref())?;
    if df.schema_changed {
        eprintln!(
            "note: the columns or types of {} differ from the manifest's: every row's digest changes with them",
            data.display()
        );
    }
    let id_col = m.header.id_column.as_deref();
    let data_dups = duplicate_ids_note(d.ids.as_deref(), id_col, "the data");
    let manifest_dups = duplicate_ids_note(m.ids.as_deref(), id_col, "the manifest");
    let (added, removed, changed) = (
        df.count(lineage::RowStatus::Added),
        df.removed.len(),
        df.count(lineage::RowStatus::Changed),
    );
    if let Some(p) = scores {
        let mut rs = RowScores {
            id_column: m.header.id_column.clone(),
            ids: d.ids.clone(),
            ..Default::default()
        };
        rs.checks.insert("baseline".into(), df.scores());
        rs.baseline_status = Some(df.status.iter().map(|s| s.as_str()).collect());
        rs.reasons = (0..df.status.len())
            .map(|i| df.reason(i).unwrap_or_default())
            .collect();
        rs.write_to(outputs.file(p)?, p)?;
    }
    if let Some(p) = report {
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "report_version": 1,
            "tool": "poisonscan",
            "tool_version": poisonscan::VERSION,
            "manifest": manifest.display().to_string(),
            "data": data.display().to_string(),
            "by_id": df.by_id,
            "schema_changed": df.schema_changed,
            "added": added,
            "removed": removed,
            "changed": changed,
            "unchanged": df.count(lineage::RowStatus::Unchanged),
            "removed_manifest_rows": df.removed.iter().take(1000).collect::<Vec<_>>(),
            "duplicate_ids_data": data_dups,
            "duplicate_ids_manifest": manifest_dups,
        }))
        .unwrap_or_default();
        outputs.write_text(p, &json)?;
    }
    outputs.commit()?;
    println!(
        "poisonscan: diff {} against {}: {added} added, {removed} removed, {changed} changed",
        data.display(),
        manifest.display()
    );
    Ok(if added + removed + changed == 0 { 0 } else { 1 })
}
