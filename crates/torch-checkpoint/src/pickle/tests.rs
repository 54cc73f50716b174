//! Hand-assembled pickles for each opcode family and each safety limit.
//! Byte strings follow CPython's `pickletools` opcode table.

use super::*;
use proptest::prelude::*;

fn s(text: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend((text.len() as u32).to_le_bytes());
    out.extend(text.as_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn str_val(text: &str) -> Value {
    Value::Str(text.into())
}

#[test]
fn protocol2_dict_of_list() {
    // {"a": 1, "b": [2, 3]}
    let p = cat(&[
        b"\x80\x02}q\x00(",
        &s("a"),
        b"K\x01",
        &s("b"),
        b"]q\x01(K\x02K\x03eu.",
    ]);
    let v = parse(&p).unwrap();
    assert_eq!(
        v,
        Value::Dict(vec![
            (str_val("a"), Value::Int(1)),
            (
                str_val("b"),
                Value::List(vec![Value::Int(2), Value::Int(3)])
            ),
        ])
    );
}

#[test]
fn scalars_and_tuples() {
    // (None, True, False, -2 (BININT), 65535 (BININT2), 1.5 (BINFLOAT), b"hi", "é")
    let p = cat(&[
        b"\x80\x03(N\x88\x89J\xfe\xff\xff\xffM\xff\xffG",
        &1.5f64.to_be_bytes(),
        b"C\x02hi\x8c\x02\xc3\xa9t.",
    ]);
    let v = parse(&p).unwrap();
    assert_eq!(
        v,
        Value::Tuple(vec![
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(-2),
            Value::Int(65535),
            Value::Float(1.5),
            Value::Bytes(b"hi".to_vec()),
            str_val("é"),
        ])
    );
    let p = b"\x80\x02K\x01K\x02\x86K\x03\x85)\x87.";
    assert_eq!(
        parse(p).unwrap(),
        Value::Tuple(vec![
            Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
            Value::Tuple(vec![Value::Int(3)]),
            Value::Tuple(vec![]),
        ])
    );
}

#[test]
fn long_integers() {
    assert_eq!(parse(b"\x80\x02\x8a\x01\xff.").unwrap(), Value::Int(-1));
    assert_eq!(parse(b"\x80\x02\x8a\x00.").unwrap(), Value::Int(0));
    // 2**63 - 1 needs a ninth (zero) byte in pickle's two's complement.
    let max = cat(&[b"\x80\x02\x8a\x09", &i64::MAX.to_le_bytes(), b"\x00."]);
    assert_eq!(parse(&max).unwrap(), Value::Int(i64::MAX));
    // 2**63 does not fit.
    let big = cat(&[b"\x80\x02\x8a\x09", &(1u64 << 63).to_le_bytes(), b"\x00."]);
    assert!(matches!(parse(&big).unwrap(), Value::BigInt(b) if b.len() == 9));
    let long4 = cat(&[b"\x80\x02\x8b\x02\x00\x00\x00\x00\x01."]);
    assert_eq!(parse(&long4).unwrap(), Value::Int(256));
}

#[test]
fn memo_sees_later_mutation() {
    // d = {} memoized, then filled through a second reference: [d, d] both complete.
    let p = cat(&[b"\x80\x02]q\x00(}q\x01h\x01", &s("k"), b"K\x01s0h\x01e."]);
    let d = Value::Dict(vec![(str_val("k"), Value::Int(1))]);
    assert_eq!(parse(&p).unwrap(), Value::List(vec![d.clone(), d]));
}

#[test]
fn protocol4_frames_stack_global_and_sets() {
    // collections.OrderedDict() via STACK_GLOBAL, then frozenset({1}) and set().add(2)
    let p = cat(&[
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94",
        b"(K\x01\x91\x8f(K\x02\x90\x87.",
    ]);
    let v = parse(&p).unwrap();
    assert_eq!(
        v,
        Value::Tuple(vec![
            Value::Dict(vec![]),
            Value::Set(vec![Value::Int(1)]),
            Value::Set(vec![Value::Int(2)]),
        ])
    );
}

#[test]
fn ordered_dict_from_reduce_and_newobj() {
    // REDUCE OrderedDict([("a", 1)]) fills the dict, like calling the class.
    let reduce = cat(&[
        b"\x80\x02ccollections\nOrderedDict\n](",
        &s("a"),
        b"K\x01ta\x85R.",
    ]);
    let expected = Value::Dict(vec![(str_val("a"), Value::Int(1))]);
    assert_eq!(parse(&reduce).unwrap(), expected);
    // NEWOBJ is `cls.__new__(cls, *args)`: an empty dict, filled by SETITEMS; the BUILD
    // state (instance attributes such as a state dict's `_metadata`) is ignored.
    let newobj = cat(&[
        b"\x80\x02ccollections\nOrderedDict\n](",
        &s("z"),
        b"K\x09ta\x85\x81(",
        &s("a"),
        b"K\x01u}b.",
    ]);
    assert_eq!(parse(&newobj).unwrap(), expected);
}

#[test]
fn parse_prefix_reports_consumed_length() {
    let (v, used) = parse_prefix(b"\x80\x02K\x07.trailing").unwrap();
    assert_eq!((v, used), (Value::Int(7), 5));
}

#[test]
fn refuses_os_system_with_offset() {
    let p = cat(&[b"\x80\x02cos\nsystem\nq\x00", &s("touch /tmp/x"), b"\x85R."]);
    match parse(&p).unwrap_err() {
        PickleError::UnsupportedGlobal {
            module,
            name,
            offset,
        } => assert_eq!(
            (module.as_str(), name.as_str(), offset),
            ("os", "system", 2)
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn refuses_eval_through_stack_global() {
    let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
    let err = parse(p).unwrap_err();
    assert!(
        matches!(&err, PickleError::UnsupportedGlobal { module, name, offset: 18 }
            if module == "builtins" && name == "eval"),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing was executed"));
}

#[test]
fn reports_unsupported_and_unknown_opcodes_by_name() {
    let err = parse(b"\x80\x02i__main__\nX\n.").unwrap_err();
    assert_eq!(
        err,
        PickleError::UnsupportedOpcode {
            name: "INST",
            code: b'i',
            offset: 2
        }
    );
    let err = parse(b"\x80\x02K\x01\xff").unwrap_err();
    assert!(matches!(
        err,
        PickleError::UnsupportedOpcode {
            name: "unknown",
            code: 0xff,
            offset: 4
        }
    ));
    let err = parse(b"\x80\x02K\x012.").unwrap_err();
    assert!(matches!(
        err,
        PickleError::UnsupportedOpcode { name: "DUP", .. }
    ));
}

#[test]
fn stack_underflow_names_the_opcode() {
    assert_eq!(
        parse(b"\x80\x02s.").unwrap_err(),
        PickleError::StackUnderflow {
            opcode: "SETITEM",
            offset: 2
        }
    );
    // Items below a MARK are out of reach, as in CPython.
    assert!(matches!(
        parse(b"\x80\x02}(\x85.").unwrap_err(),
        PickleError::StackUnderflow {
            opcode: "TUPLE1",
            ..
        }
    ));
    assert!(matches!(
        parse(b"\x80\x02t.").unwrap_err(),
        PickleError::StackUnderflow {
            opcode: "TUPLE",
            ..
        }
    ));
    assert!(matches!(
        parse(b".").unwrap_err(),
        PickleError::StackUnderflow { opcode: "STOP", .. }
    ));
}

#[test]
fn truncation_is_reported() {
    for p in [
        &b""[..],
        b"\x80",
        b"\x80\x02X\x05\x00\x00\x00ab",
        b"\x80\x02K\x01",
        b"\x80\x02cos\nsys",
        b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        assert!(
            matches!(parse(p), Err(PickleError::Truncated { .. })),
            "{p:?} -> {:?}",
            parse(p)
        );
    }
}

#[test]
fn malformed_content_is_reported() {
    let cases: [&[u8]; 6] = [
        b"\x80\x06N.",                     // protocol 6
        b"\x80\x02h\x05.",                 // memo key missing
        b"\x80\x02X\x01\x00\x00\x00\xff.", // invalid UTF-8
        b"\x80\x02K\x01N\x86Nb.",          // BUILD on a tuple
        b"\x80\x02}K\x01a.",               // APPEND on a dict
        b"\x80\x02K\x01)R.",               // calling an int
    ];
    for p in cases {
        assert!(
            matches!(parse(p), Err(PickleError::Malformed { .. })),
            "{p:?} -> {:?}",
            parse(p)
        );
    }
}

#[test]
fn deep_nesting_is_capped() {
    let n = MAX_DEPTH + 10;
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    assert!(matches!(parse(&p), Err(PickleError::LimitExceeded { .. })));

    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'(', 100_000));
    p.extend(std::iter::repeat_n(b't', 100_000));
    p.push(b'.');
    assert!(matches!(parse(&p), Err(PickleError::LimitExceeded { .. })));
}

#[test]
fn nesting_up_to_the_cap_is_fine() {
    let n = 50;
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', n));
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    assert_eq!(parse(&p).unwrap().depth(), n);
}

#[test]
fn memo_expansion_bomb_is_stopped() {
    // L0 = []; L(k+1) = [Lk] * 10, for k < 12: 10^12 nodes from ~300 bytes.
    let mut p = b"\x80\x02]q\x00".to_vec();
    for k in 0..12u8 {
        p.extend(b"]q");
        p.push(k + 1);
        p.push(b'(');
        for _ in 0..10 {
            p.extend([b'h', k]);
        }
        p.push(b'e');
    }
    p.push(b'.');
    assert!(matches!(parse(&p), Err(PickleError::LimitExceeded { .. })));
}

#[test]
fn reference_cycles_are_stopped() {
    // l = []; l.append(l)
    let p = b"\x80\x02]q\x00h\x00a.";
    assert!(matches!(parse(p), Err(PickleError::LimitExceeded { .. })));
    // memo aliases 0 -> 1 -> 0
    let p = b"\x80\x02Nq\x00h\x00q\x01h\x01q\x00.";
    assert!(matches!(parse(p), Err(PickleError::LimitExceeded { .. })));
}

#[test]
fn persistent_ids_become_storages() {
    let p = cat(&[
        b"\x80\x02(",
        &s("storage"),
        b"ctorch\nHalfStorage\n",
        &s("7"),
        &s("cuda:0"),
        b"K\x05tQ.",
    ]);
    match parse(&p).unwrap() {
        Value::Storage(st) => {
            assert_eq!(st.key, "7");
            assert_eq!(st.kind.dtype, Some(crate::DType::F16));
            assert_eq!((st.numel, st.location.as_str()), (5, "cuda:0"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let not_storage = b"\x80\x02K\x01\x85Q.";
    assert!(matches!(
        parse(not_storage),
        Err(PickleError::Malformed { .. })
    ));
}

fn fixture_pickles() -> &'static [Vec<u8>] {
    static PICKLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    PICKLES.get_or_init(read_fixture_pickles)
}

fn read_fixture_pickles() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    ["state_dict.pt", "state_dict_p4.pt", "wrapped.pth"]
        .iter()
        .map(|name| {
            let file = std::fs::File::open(dir.join(name)).unwrap();
            let mut zip = zip::ZipArchive::new(file).unwrap();
            let pkl = zip
                .file_names()
                .find(|n| n.ends_with("/data.pkl"))
                .unwrap()
                .to_owned();
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut zip.by_name(&pkl).unwrap(), &mut buf).unwrap();
            buf
        })
        .collect()
}

#[test]
fn fixture_pickles_parse() {
    for pkl in fixture_pickles() {
        assert!(matches!(parse(pkl), Ok(Value::Dict(_))));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The parser never panics on arbitrary bytes (the `pickle` fuzz target, in-process).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes);
        let mut with_header = b"\x80\x02".to_vec();
        with_header.extend(&bytes);
        let _ = parse(&with_header);
    }

    /// Mutated real torch pickles never panic.
    #[test]
    fn mutated_torch_pickles_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut pkl = fixture_pickles()[which].clone();
        for (at, byte) in edits {
            let i = at.index(pkl.len());
            pkl[i] = byte;
        }
        if truncate {
            pkl.truncate(cut.index(pkl.len()));
        }
        let _ = parse(&pkl);
    }
}

/// Byte-exact pickles written by real numpy (1.26.4 and 2.4.6, `pickle.dumps(x, protocol)`):
/// the form a `best_dice` metric takes in MedCLIPSeg checkpoints.
#[test]
fn real_numpy_scalar_pickles() {
    let f32_np1 = b"\x80\x02cnumpy.core.multiarray\nscalar\nq\x00cnumpy\ndtype\nq\x01X\x02\x00\x00\x00f4q\x02\x89\x88\x87q\x03Rq\x04(K\x03X\x01\x00\x00\x00<q\x05NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x06bc_codecs\nencode\nq\x07X\x04\x00\x00\x00\x00\x00P?q\x08X\x06\x00\x00\x00latin1q\t\x86q\nRq\x0b\x86q\x0cRq\r.";
    assert_eq!(parse(f32_np1).unwrap(), Value::Float(0.8125));
    let i64_np1 = b"\x80\x02cnumpy.core.multiarray\nscalar\nq\x00cnumpy\ndtype\nq\x01X\x02\x00\x00\x00i8q\x02\x89\x88\x87q\x03Rq\x04(K\x03X\x01\x00\x00\x00<q\x05NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x06bc_codecs\nencode\nq\x07X\x10\x00\x00\x00\xc3\xbb\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbf\xc3\xbfq\x08X\x06\x00\x00\x00latin1q\t\x86q\nRq\x0b\x86q\x0cRq\r.";
    assert_eq!(parse(i64_np1).unwrap(), Value::Int(-5));
    let f64_np2 = b"\x80\x02cnumpy._core.multiarray\nscalar\nq\x00cnumpy\ndtype\nq\x01X\x02\x00\x00\x00f8q\x02\x89\x88\x87q\x03Rq\x04(K\x03X\x01\x00\x00\x00<q\x05NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x06bc_codecs\nencode\nq\x07X\t\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc3\x90?q\x08X\x06\x00\x00\x00latin1q\t\x86q\nRq\x0b\x86q\x0cRq\r.";
    assert_eq!(parse(f64_np2).unwrap(), Value::Float(0.25));
    let f32_np2_p4 = b"\x80\x04\x95f\x00\x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x06scalar\x94\x93\x94\x8c\x05numpy\x94\x8c\x05dtype\x94\x93\x94\x8c\x02f4\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94bC\x04\x00\x00P?\x94\x86\x94R\x94.";
    assert_eq!(parse(f32_np2_p4).unwrap(), Value::Float(0.8125));
}
