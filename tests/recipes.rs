//! What the README and docs/labs.md tell a student to type exists.
//!
//! A recipe that names an option the program does not have, or a make
//! target the Makefile does not have, fails on the student's first try, and
//! a help text quoted from an older version teaches options that are gone.
//! So the commands are read out of the documents and checked against the
//! program's own `-h` output and the Makefile:
//!
//! - every `pingpong` command names a subcommand `pingpong -h` lists, only
//!   options that subcommand's `-h` lists, and values (`--mode`, `--bug`, a
//!   lab's name) among the possible values it prints;
//! - every `make` command names a target of the Makefile;
//! - docs/labs.md spells the binary `target/release/pingpong`, as its
//!   opening says, and needs no nc;
//! - the `-h` output the README shows is the program's, word for word.
//!
//! Running the recipes takes a terminal and a few minutes; each was run by
//! hand when written. This test catches what drifts afterwards.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::BIN;

const PINGPONG: &str = "target/release/pingpong";

#[test]
fn every_command_in_the_docs_names_a_real_subcommand_option_and_make_target() {
    let targets = make_targets();
    let mut problems = Vec::new();
    let mut checked = (0, 0); // (pingpong commands in the labs, make commands)
    for doc in ["README.md", "docs/labs.md"] {
        let text = read(doc);
        for command in commands(&text) {
            let words = words(&command);
            match words.first().map(String::as_str) {
                Some(PINGPONG) | Some("pingpong") => {
                    checked.0 += usize::from(doc == "docs/labs.md");
                    if doc == "docs/labs.md" && words[0] == "pingpong" {
                        problems.push(format!(
                            "{doc}: `{command}`: bare pingpong; the labs spell it {PINGPONG}"
                        ));
                    }
                    if let Err(why) = check_pingpong(&words[1..]) {
                        problems.push(format!("{doc}: `{command}`: {why}"));
                    }
                }
                Some("make") => {
                    checked.1 += 1;
                    for target in words[1..].iter().filter(|w| !w.contains('=')) {
                        // `make strace-*`: some target of that family.
                        let family = target.strip_suffix('*');
                        let known = match family {
                            Some(prefix) => targets.iter().any(|t| t.starts_with(prefix)),
                            None => targets.contains(target),
                        };
                        if !known {
                            problems.push(format!("{doc}: `{command}`: no make target {target}"));
                        }
                    }
                }
                Some("nc") if doc == "docs/labs.md" => {
                    problems.push(format!("{doc}: `{command}`: nc, which many machines lack"));
                }
                Some("pgrep") if doc == "docs/labs.md" => {
                    problems.push(format!(
                        "{doc}: `{command}`: pgrep finds a client as soon as the server; use $server"
                    ));
                }
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "commands the program does not know:\n{}", problems.join("\n"));
    // Not vacuous: the labs' ten servers (nine by-hand recipes, and Ctrl-Z
    // by hand) and ten `lab` runs; the README's targets.
    assert!(checked.0 >= 20, "only {} pingpong commands found in docs/labs.md", checked.0);
    assert!(checked.1 >= 15, "only {} make commands found in the docs", checked.1);
}

#[test]
fn the_labs_by_hand_recipes_watch_the_server_they_started() {
    // Each by-hand recipe keeps its server's pid in $server ($! of the
    // server put in the background) and watches that, never a guessed one.
    let labs = read("docs/labs.md");
    let recipes: Vec<&str> =
        sh_blocks(&labs).into_iter().filter(|b| b.contains(" serve ")).collect();
    assert!(recipes.len() >= 9, "{} by-hand recipes in docs/labs.md", recipes.len());
    for recipe in recipes {
        let lines: Vec<&str> = recipe.lines().collect();
        let serve = lines.iter().position(|l| l.contains(" serve ")).unwrap();
        assert!(
            lines[serve].trim_end().ends_with('&')
                && lines.get(serve + 1).is_some_and(|l| l.starts_with("server=$!")),
            "a recipe whose server's pid is not kept in $server:\n{recipe}"
        );
        for watch in ["top ", "strace ", "/proc/", "kill "] {
            for line in lines.iter().filter(|l| l.contains(watch)) {
                assert!(line.contains('$'), "{watch:?} given no pid variable: {line}");
            }
        }
    }
}

#[test]
#[cfg(target_os = "linux")] // the possible --mode values differ by OS
fn the_readme_shows_the_help_the_program_prints() {
    let readme = read("README.md");
    let mut shown = 0;
    for block in blocks(&readme, "text") {
        let mut rest = block;
        while let Some(at) = rest.find(&format!("$ {PINGPONG} ")) {
            rest = &rest[at + 2..];
            let (command, after) = rest.split_once('\n').unwrap_or((rest, ""));
            let end = after.find("\n$ ").map_or(after.len(), |i| i + 1);
            let output = after[..end].trim_end();
            let args: Vec<&str> = command.split_whitespace().skip(1).collect();
            let real = run(&args);
            assert_eq!(
                output,
                real.trim_end(),
                "the README's `{command}` (left) is not what the program prints (right)"
            );
            shown += 1;
            rest = &after[end..];
        }
    }
    assert!(shown >= 3, "the README shows {shown} help outputs, not -h, serve -h, client -h");
    for must in ["--bug <NAME>", "  lab ", "--quiet", "--mode <MODE>"] {
        assert!(readme.contains(must), "the README's help leaves out {must:?}");
    }
}

/// Check `pingpong ARGS...` against the program's own `-h` output.
fn check_pingpong(args: &[String]) -> Result<(), String> {
    let subcommands = listed_commands(&run(&["-h"]));
    let Some(sub) = args.first() else { return Err("no subcommand".into()) };
    if !subcommands.contains(sub) {
        return Err(format!("no subcommand {sub} (pingpong -h lists {subcommands:?})"));
    }
    let help = run(&[sub, "-h"]);
    let options = listed_options(&help);
    let mut words = args[1..].iter().peekable();
    let mut positional = Vec::new();
    while let Some(word) = words.next() {
        if word == "--" {
            break; // the rest is the command `check` or `watch` starts
        }
        let Some(option) = word.strip_prefix("--") else {
            positional.push(word);
            continue;
        };
        let (name, inline) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (option, None),
        };
        let Some(takes_value) = options.iter().find(|o| o.0 == name).map(|o| o.1) else {
            return Err(format!("pingpong {sub} has no --{name}"));
        };
        if takes_value {
            let value = inline.or_else(|| words.next().cloned()).unwrap_or_default();
            if let Some(allowed) = possible_values(&help, &format!("--{name} ")) {
                if !allowed.contains(&value) {
                    return Err(format!("--{name} {value}: not one of {allowed:?}"));
                }
            }
        }
    }
    if sub == "lab" {
        let allowed = possible_values(&help, "[NAME]").unwrap_or_default();
        for name in positional {
            if !allowed.contains(name) {
                return Err(format!("no lab {name}: {allowed:?}"));
            }
        }
    }
    Ok(())
}

/// The subcommands under `Commands:` in `pingpong -h`.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// (name, takes a value) for each `--name` under `Options:`.
fn listed_options(help: &str) -> Vec<(String, bool)> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            let spec = l.split("  ").next().unwrap_or("");
            let takes = spec.contains('<');
            spec.split([',', ' '])
                .filter_map(|w| w.strip_prefix("--"))
                .map(|n| (n.to_string(), takes))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `[possible values: a, b]` of the help line that starts with `key`.
fn possible_values(help: &str, key: &str) -> Option<Vec<String>> {
    let line = help.lines().find(|l| l.trim_start().starts_with(key))?;
    let list = line.split_once("[possible values: ")?.1.split(']').next()?;
    Some(list.split(", ").map(str::to_string).collect())
}

/// Every command in a document: each line of its ```sh blocks, and each
/// inline `code` span that starts with the binary or `make`, split at the
/// shell's `;`, `&&`, `&`, `|` and parentheses, comments dropped.
fn commands(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for block in sh_blocks(text) {
        lines.extend(block.lines().map(|l| strip_comment(l).to_string()));
    }
    let mut in_block = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            let binary = span.strip_prefix(PINGPONG).is_some_and(|r| r.starts_with(' '));
            if i % 2 == 1 && (binary || span.starts_with("make ")) {
                lines.push(span.to_string());
            }
        }
    }
    let mut commands = Vec::new();
    for line in lines {
        let line = line.replace("&&", ";").replace("||", ";");
        for part in line.split([';', '&', '|', '(', ')']) {
            let mut part = part.trim();
            for prefix in ["exec ", "time ", "sudo "] {
                part = part.strip_prefix(prefix).unwrap_or(part).trim_start();
            }
            if !part.is_empty() {
                commands.push(part.to_string());
            }
        }
    }
    commands
}

/// A command's words as the shell splits them (quotes group and are
/// removed), redirections (`2>file`, `>&3`, `<&3`) dropped.
fn words(command: &str) -> Vec<String> {
    let (mut words, mut word, mut quote) = (Vec::new(), String::new(), None);
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ' ' | '\t') => words.push(std::mem::take(&mut word)),
            _ => word.push(c),
        }
    }
    words.push(word);
    words.retain(|w| !w.is_empty() && !w.contains('>') && !w.contains('<'));
    words
}

/// A shell line without its `# comment` (a `#` after whitespace).
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    line.find(" #").map_or(line, |i| &line[..i])
}

fn sh_blocks(text: &str) -> Vec<&str> {
    blocks(text, "sh")
}

/// The bodies of the fenced blocks of a language.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let fence = format!("```{lang}\n");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&fence) {
        let body = &rest[at + fence.len()..];
        let end = body.find("\n```").map_or(body.len(), |i| i + 1);
        found.push(&body[..end]);
        rest = &body[end..];
    }
    found
}

/// The targets the Makefile defines (`name: ...`, not `NAME := ...`).
fn make_targets() -> BTreeSet<String> {
    let makefile = read("Makefile");
    let targets: BTreeSet<String> = makefile
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let ok = !name.is_empty()
                && !rest.starts_with('=')
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            ok.then(|| name.to_string())
        })
        .collect();
    assert!(targets.contains("run-epoll") && targets.contains("test"), "{targets:?}");
    targets
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run pingpong");
    assert!(out.status.success(), "pingpong {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn commands_are_cut_out_of_shell_lines_as_a_shell_would() {
    let text = "\
Run `target/release/pingpong lab sigpipe`, or:

```sh
(ulimit -n 32 && exec target/release/pingpong serve --bug no-spare-fd) &
server=$!; sleep 1   # a comment naming --nothing
yes ping | head -n 4 >&3 & timeout 3 cat <&3 | wc -l
make run-epoll ARGS=\"--trace\"
```
";
    let commands = commands(text);
    let served = "target/release/pingpong serve --bug no-spare-fd".to_string();
    assert!(commands.contains(&served), "no `{served}` (exec dropped) in {commands:?}");
    assert!(commands.contains(&"target/release/pingpong lab sigpipe".to_string()));
    assert!(commands.contains(&"make run-epoll ARGS=\"--trace\"".to_string()));
    assert!(!commands.iter().any(|c| c.contains("--nothing")), "{commands:?}");
    assert_eq!(words("head -n 4 >&3"), ["head", "-n", "4"]);
    assert_eq!(
        words("make run-hybrid ARGS=\"--workers 4\""),
        ["make", "run-hybrid", "ARGS=--workers 4"]
    );
    assert!(check_pingpong(&["serve".into(), "--bug".into(), "no-spare-fd".into()]).is_ok());
    assert!(check_pingpong(&["serve".into(), "--bug".into(), "no-such-bug".into()]).is_err());
    assert!(check_pingpong(&["client".into(), "--loud".into()]).is_err());
    assert!(check_pingpong(&["lab".into(), "no-spare-fd".into()]).is_ok());
    assert!(check_pingpong(&["lab".into(), "no-such-lab".into()]).is_err());
    assert!(check_pingpong(&["launch".into()]).is_err());
}
