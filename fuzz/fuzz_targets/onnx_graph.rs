//! Feeds arbitrary bytes to the ONNX graph reader as a whole file: it must describe the graph or return an
//! error, never panic or allocate without bound.
#![no_main]

use std::path::Path;

use inferno::models::onnx_graph::OnnxGraph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = OnnxGraph::from_bytes(data, Path::new("fuzz.onnx")) {
        assert!(graph.ir_version > 0);
        assert!(graph.inputs.len() + graph.outputs.len() <= data.len());
    }
});
