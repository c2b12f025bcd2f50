//! The one description of each network: the graph of its forward pass ([`program`]) and the
//! output channels of its convolution blocks ([`block_outputs`]). burn's modules
//! ([`super::Net`]), our CPU inference ([`super::cpu`]) and our CPU training
//! ([`super::cpu_train`]) are all built from it: a change of architecture is one edit here.

use super::Architecture;

/// One step of a network's forward pass over numbered values; value `i` is the result of
/// step `i`, and step 0 is the input image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Input,
    /// Convolution block `.0` (in [`Net::parts`] order) applied to value `.1`.
    Block(usize, usize),
    Pool(usize),
    Up(usize),
    /// The channels of value `.0`, then those of value `.1`.
    Cat(usize, usize),
    /// The output convolution applied to value `.0`; the last step.
    Head(usize),
}

impl Op {
    /// The values this step reads.
    pub(crate) fn inputs(self) -> Vec<usize> {
        match self {
            Op::Input => vec![],
            Op::Block(_, s) | Op::Pool(s) | Op::Up(s) | Op::Head(s) => vec![s],
            Op::Cat(a, b) => vec![a, b],
        }
    }
}

/// The forward pass of each network: the graph burn's [`super::Net::forward`], our CPU
/// inference and our CPU training all interpret.
pub(crate) fn program(arch: Architecture) -> Vec<Op> {
    use Op::*;
    match arch {
        // c1, pool, c2, c3, pool, c4, c5, up, c6, up, head.
        Architecture::Sniffer => vec![
            Input,
            Block(0, 0),
            Pool(1),
            Block(1, 2),
            Block(2, 3),
            Pool(4),
            Block(3, 5),
            Block(4, 6),
            Up(7),
            Block(5, 8),
            Up(9),
            Head(10),
        ],
        // Skips s1 = value 2, s2 = 5, s3 = 8.
        Architecture::Unet => vec![
            Input,
            Block(0, 0),
            Block(1, 1),
            Pool(2),
            Block(2, 3),
            Block(3, 4),
            Pool(5),
            Block(4, 6),
            Block(5, 7),
            Pool(8),
            Block(6, 9),
            Block(7, 10),
            Up(11),
            Cat(12, 8),
            Block(8, 13),
            Block(9, 14),
            Up(15),
            Cat(16, 5),
            Block(10, 17),
            Block(11, 18),
            Up(19),
            Cat(20, 2),
            Block(12, 21),
            Block(13, 22),
            Head(23),
        ],
    }
}

/// Output channels of each convolution block of `arch` at `width` (in [`program`]'s block
/// order): the Sniffer of Maksov et al. (2019), (c, 2c, 2c, 2c, 2c, c); the U-Net, two blocks
/// per level with filters (f, 2f, 4f, 8f) down and back up.
pub(crate) fn block_outputs(arch: Architecture, width: usize) -> Vec<usize> {
    let c = width;
    match arch {
        Architecture::Sniffer => vec![c, 2 * c, 2 * c, 2 * c, 2 * c, c],
        Architecture::Unet => [1, 2, 4, 8, 4, 2, 1]
            .iter()
            .flat_map(|&k| [k * c, k * c])
            .collect(),
    }
}

/// The planes of every value of `program` whose blocks output `couts` planes (the input and
/// the head: one).
pub(crate) fn value_planes(program: &[Op], couts: &[usize]) -> Vec<usize> {
    let mut planes = vec![1; program.len()];
    for (i, op) in program.iter().enumerate() {
        planes[i] = match *op {
            Op::Input | Op::Head(_) => 1,
            Op::Block(b, _) => couts[b],
            Op::Pool(s) | Op::Up(s) => planes[s],
            Op::Cat(a, b) => planes[a] + planes[b],
        };
    }
    planes
}

/// Input and output channels of each block, and the input channels of the head.
pub(crate) fn channels(arch: Architecture, width: usize) -> (Vec<(usize, usize)>, usize) {
    let program = program(arch);
    let couts = block_outputs(arch, width);
    let planes = value_planes(&program, &couts);
    let mut blocks = vec![(0, 0); couts.len()];
    let mut head = 0;
    for op in &program {
        match *op {
            Op::Block(b, s) => blocks[b] = (planes[s], couts[b]),
            Op::Head(s) => head = planes[s],
            _ => {}
        }
    }
    (blocks, head)
}

/// The names the blocks had in checkpoints of format 1, in block order (the Sniffer's c1–c6;
/// the U-Net's e1–e3, mid, d3–d1, two each), under the architecture's name.
pub(crate) fn format_1_block_names(arch: Architecture) -> Vec<String> {
    match arch {
        Architecture::Sniffer => (1..=6).map(|k| format!("Sniffer.c{k}")).collect(),
        Architecture::Unet => ["e1", "e2", "e3", "mid", "d3", "d2", "d1"]
            .iter()
            .flat_map(|l| [format!("Unet.{l}.0"), format!("Unet.{l}.1")])
            .collect(),
    }
}

/// Where a program's convolution blocks read an upsampled value, alone or concatenated with a
/// skip connection, and can run on the value before upsampling ([`conv_up`]); `couts` are the
/// blocks' output planes. Per step, where it differs from the step's inputs: the values such a
/// block reads (the value before upsampling, then the skip), and nothing for the upsampling
/// and concatenation it makes unneeded. Per block: the planes of its upsampled input.
pub(crate) fn fused_upsampling(
    program: &[Op],
    couts: &[usize],
) -> (Vec<Option<Vec<usize>>>, Vec<Option<usize>>) {
    let planes = value_planes(program, couts);
    let only_reader = |i: usize| {
        let mut readers = (0..program.len()).filter(|&j| program[j].inputs().contains(&i));
        match (readers.next(), readers.next()) {
            (Some(j), None) => Some(j),
            _ => None,
        }
    };
    let mut fused = vec![None; program.len()];
    let mut up_planes = vec![None; couts.len()];
    for (j, op) in program.iter().enumerate() {
        let Op::Block(b, s) = *op else { continue };
        if couts[b] < 2 || only_reader(s) != Some(j) {
            continue;
        }
        let (t, skip, made) = match program[s] {
            Op::Up(t) => (t, None, vec![s]),
            Op::Cat(u, k) => match program[u] {
                Op::Up(t) if only_reader(u) == Some(s) => (t, Some(k), vec![u, s]),
                _ => continue,
            },
            _ => continue,
        };
        if planes[t] < 2 {
            continue;
        }
        up_planes[b] = Some(planes[t]);
        fused[j] = Some([t].into_iter().chain(skip).collect());
        for m in made {
            fused[m] = Some(vec![]);
        }
    }
    (fused, up_planes)
}
